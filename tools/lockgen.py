#!/usr/bin/env python3
"""Write pixi.lock (format v7) from pixi.toml without network access.

Maintainer tool for air-gapped machines; with network, `pixi lock` is the normal path.
Every environment x platform in pixi.toml is solved with py-rattler against a local copy of
conda-forge records (default: ../shared/conda-forge-snapshot next to the repository), using
the virtual packages the platform declares. The lock records the real conda-forge URLs and
sha256 hashes, pixi's virtual-package strings for each platform, and nothing the manifest
does not ask for.

When a combination cannot be solved the lock is NOT written: the missing records are printed
(name, version, build, subdir) and, with --report, written as JSON. The built-in probes solve
combinations the manifest deliberately leaves out (e.g. GPU TensorFlow next to PyTorch for
CUDA 11) so the report shows, record by record, why they are left out.

    python tools/lockgen.py                       # write pixi.lock
    python tools/lockgen.py --check               # re-solve, compare with pixi.lock
    python tools/lockgen.py --report locks/solve-report.json

The report also records the sha256 of the lock this tool wrote and of the snapshot's record
files: the test suite re-solves pixi.lock only when both still match (a lock `pixi update`
wrote, or one solved from another snapshot, is checked by `envcheck lock` alone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import manifest as mf  # also puts the checkout on sys.path, for envcheck
from rattler import LockChannel, LockFile, LockPlatform, RepoDataRecord, Subdir
from snapshot import MissingRecord, Snapshot, SolveFailed

from envcheck.fileio import write_atomic

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHANNEL_DIR = REPO.parent / "shared" / "conda-forge-snapshot"

# Packages whose solved version/build the report lists per environment x platform.
KEY_PACKAGES = (
    "python",
    "pytorch",
    "libtorch",
    "tensorflow",
    "tensorflow-base",
    "keras",
    "cuda-version",
    "cudatoolkit",
    "cudnn",
    "nccl",
    "libprotobuf",
    "libabseil",
    "numpy",
)


@dataclass(frozen=True)
class Probe:
    """A combination the manifest leaves out on purpose, solved to document why."""

    label: str
    env: str
    subdir: str
    cuda: str | None
    add: tuple[str, ...]
    drop: tuple[str, ...] = ()  # direct specs removed to find which pins the add conflicts with


PROBES = (
    Probe(
        "cuda11: GPU TensorFlow next to PyTorch",
        "cuda11",
        "linux-64",
        "11.0",
        ('tensorflow[build="cuda118*"]',),
        ("pytorch",),
    ),
    Probe(
        "cpu/linux-aarch64: TensorFlow next to PyTorch",
        "cpu",
        "linux-aarch64",
        None,
        ('tensorflow[version=">=2.19.1,<2.22", build="cpu_*"]', "keras"),
        ("pytorch",),
    ),
    Probe(
        "cpu/osx-arm64: TensorFlow", "cpu", "osx-arm64", None, ("tensorflow", "keras"), ("pytorch",)
    ),
    Probe("cpu/win-64: TensorFlow", "cpu", "win-64", None, ("tensorflow", "keras"), ("pytorch",)),
    Probe(
        "cuda12/linux-64: newest PyTorch (>=2.12) next to TensorFlow",
        "cuda12",
        "linux-64",
        "12.0",
        ('pytorch[version=">=2.12", build="cuda12*"]',),
        ("tensorflow",),
    ),
    Probe(
        "cuda12/linux-aarch64: GPU TensorFlow",
        "cuda12",
        "linux-aarch64",
        "12.0",
        ('tensorflow[build="cuda12*"]', "keras"),
        ("pytorch",),
    ),
    Probe(
        "cuda12/win-64: GPU TensorFlow",
        "cuda12",
        "win-64",
        "12.0",
        ('tensorflow[build="cuda12*"]', "keras"),
        ("pytorch",),
    ),
    Probe(
        "cuda13: GPU TensorFlow",
        "cuda13",
        "linux-64",
        "13.0",
        ('tensorflow[build="cuda13*"]', "keras"),
        ("pytorch",),
    ),
    # Why torch-cpu is linux-64 only and torch-cuda12 stops at 2.10 off linux-64.
    Probe("torch-cpu/win-64: PyTorch 2.13 cpu", "torch-cpu", "win-64", None, ()),
    Probe(
        "torch-cuda12/linux-aarch64: PyTorch newer than 2.10",
        "torch-cuda12",
        "linux-aarch64",
        "12.0",
        ('pytorch[version=">2.10", build="cuda12*"]',),
    ),
    Probe(
        "torch-cuda12/win-64: PyTorch newer than 2.10",
        "torch-cuda12",
        "win-64",
        "12.0",
        ('pytorch[version=">2.10", build="cuda12*"]',),
    ),
    Probe("cuda13/linux-aarch64: PyTorch", "cuda13", "linux-aarch64", "13.0", ()),
    Probe("cuda13/win-64: PyTorch", "cuda13", "win-64", "13.0", ()),
    Probe("cuda11/linux-aarch64: PyTorch", "cuda11", "linux-aarch64", "11.0", ()),
)


@dataclass
class Outcome:
    """Result of solving one environment x platform."""

    env: str
    platform: mf.PlatformDecl
    records: list[RepoDataRecord] = field(default_factory=list)
    error: str | None = None
    missing: list[MissingRecord] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        by_name = {r.name.normalized: r for r in self.records}
        return {
            "subdir": self.platform.subdir,
            "virtual_packages": mf.lock_virtuals(self.platform),
            "solved": self.error is None,
            "package_count": len(self.records),
            "key_packages": {
                n: f"{by_name[n].version} {by_name[n].build}" for n in KEY_PACKAGES if n in by_name
            },
            "missing": [m.as_dict() for m in self.missing],
            **({"solver_message": self.error} if self.error else {}),
        }


def solve_env_platform(
    ws: mf.Workspace, snap: Snapshot, env: str, platform: mf.PlatformDecl
) -> Outcome:
    specs = ws.specs(env, platform)
    outcome = Outcome(env, platform)
    try:
        outcome.records = snap.solve(
            platform.subdir, specs, ws.constraints(env, platform), mf.solve_virtuals(platform)
        )
    except SolveFailed as exc:
        outcome.error = str(exc)
        outcome.missing = snap.missing_after_failure(platform.subdir, specs, str(exc))
    return outcome


def run_probe(ws: mf.Workspace, snap: Snapshot, probe: Probe) -> dict[str, object]:
    platform = _probe_platform(ws, probe)
    base_specs = ws.specs(probe.env, platform)
    constraints = ws.constraints(probe.env, platform)
    vps = mf.solve_virtuals(platform)
    specs = base_specs + list(probe.add)
    result: dict[str, object] = {
        "label": probe.label,
        "env": probe.env,
        "subdir": probe.subdir,
        "cuda": probe.cuda,
        "specs": specs,
        "constraints": constraints,
    }
    try:
        records = snap.solve(probe.subdir, specs, constraints, vps)
    except SolveFailed as exc:
        result["solved"] = False
        missing = snap.missing_for(probe.subdir, specs)
        if not missing and not probe.drop:
            missing = snap.missing_after_failure(probe.subdir, specs, str(exc))
        if not missing and probe.drop:
            missing = _conflict_as_missing(snap, probe, base_specs, constraints, vps)
        result["missing"] = [m.as_dict() for m in missing]
        result["solver_message"] = str(exc)
        return result
    result["solved"] = True
    by_name = {r.name.normalized: r for r in records}
    result["key_packages"] = {
        n: f"{by_name[n].version} {by_name[n].build}" for n in KEY_PACKAGES if n in by_name
    }
    return result


def _probe_platform(ws: mf.Workspace, probe: Probe) -> mf.PlatformDecl:
    """The workspace platform with this subdir and CUDA (so target tables apply), else a
    synthetic one declaring the same virtual packages."""
    declared = (mf.Virtual("__cuda", probe.cuda),) if probe.cuda else ()
    for platform in ws.platforms.values():
        if platform.subdir == probe.subdir and platform.declared == declared:
            return platform
    suffix = f"-cuda{probe.cuda.split('.')[0]}" if probe.cuda else ""
    return mf.PlatformDecl(f"{probe.subdir}{suffix}", probe.subdir, declared)


def _conflict_as_missing(
    snap: Snapshot,
    probe: Probe,
    base_specs: list[str],
    constraints: list[str],
    vps: list[mf.Virtual],
) -> list[MissingRecord]:
    """Every direct spec exists, but not together: solve with the `drop` specs removed and
    name, for each dropped package, the pins its missing build would have to accept."""
    kept = [s for s in base_specs if _spec_name(s) not in probe.drop]
    try:
        without = snap.solve(probe.subdir, kept + list(probe.add), constraints, vps)
    except SolveFailed as exc:
        # The added specs fail even without their partner: name what that solve lacks.
        return snap.missing_after_failure(probe.subdir, kept + list(probe.add), str(exc)) or [
            MissingRecord(
                _spec_name(a),
                _spec_field(a, "version"),
                _spec_field(a, "build"),
                probe.subdir,
                "conflicts with the environment's other specs even "
                "without " + ", ".join(probe.drop) + " (see solver_message)",
            )
            for a in probe.add
        ]
    pins = {r.name.normalized: r for r in without}
    missing = []
    for spec in base_specs + [a for a in probe.add if _spec_name(a) in probe.drop]:
        name = _spec_name(spec)
        if name not in probe.drop:
            continue
        shared = _shared_pins(snap, probe.subdir, spec, pins)
        missing.append(
            MissingRecord(
                name,
                _spec_field(spec, "version"),
                _spec_field(spec, "build"),
                probe.subdir,
                "no build in the snapshot is co-installable with " + ", ".join(shared),
            )
        )
    return missing


def _shared_pins(
    snap: Snapshot, subdir: str, spec: str, pins: dict[str, RepoDataRecord], depth: int = 2
) -> list[str]:
    """The solved packages that candidate records of `spec` (or, `depth` levels down, the
    records they pin) depend on but reject: the pins a missing build would have to accept."""
    from rattler import MatchSpec  # local: only needed for diagnostics

    rejected: set[str] = set()
    frontier, seen = [spec], {spec}
    for _ in range(depth):
        next_frontier = []
        for candidate_spec in frontier:
            for record in snap.matching(subdir, candidate_spec):
                for dep in record.depends:
                    dep_spec = MatchSpec(dep)
                    name = dep_spec.name.normalized
                    pinned = pins.get(name)
                    if pinned is not None and not dep_spec.matches(pinned):
                        rejected.add(f"{name} {pinned.version} {pinned.build}")
                    elif pinned is None and dep not in seen and not name.startswith("__"):
                        seen.add(dep)
                        next_frontier.append(dep)
        frontier = next_frontier
    return sorted(rejected) or ["the rest of the environment (see solver_message)"]


def _spec_name(spec: str) -> str:
    return spec.split("[", 1)[0].split(" ", 1)[0]


def _spec_field(spec: str, key: str) -> str:
    marker = f'{key}="'
    if marker not in spec:
        return "*"
    return spec.split(marker, 1)[1].split('"', 1)[0]


def build_lock(ws: mf.Workspace, outcomes: list[Outcome]) -> LockFile:
    used = {o.platform.name for o in outcomes}
    platforms = {name: _lock_platform(p) for name, p in ws.platforms.items() if name in used}
    lock = LockFile(list(platforms.values()))
    channels = [LockChannel(url) for url in ws.channel_urls()]
    for env in sorted(ws.environments):
        lock.set_channels(env, channels)
    for outcome in outcomes:
        for record in outcome.records:
            lock.add_conda_package(outcome.env, platforms[outcome.platform.name], record)
    return lock


def _lock_platform(platform: mf.PlatformDecl) -> LockPlatform:
    return LockPlatform(platform.name, Subdir(platform.subdir), mf.lock_virtuals(platform))


def solve_all(ws: mf.Workspace, snap: Snapshot) -> list[Outcome]:
    return [
        solve_env_platform(ws, snap, env, platform)
        for env in sorted(ws.environments)
        for platform in ws.env_platforms(env)
    ]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot_sha256(channel_dir: Path) -> str:
    """One hash over the snapshot's record files: which records the lock was solved from."""
    digest = hashlib.sha256()
    for path in sorted([*channel_dir.glob("*/repodata.json"), *channel_dir.glob("broken.json")]):
        digest.update(path.relative_to(channel_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_report(
    path: Path,
    ws: mf.Workspace,
    outcomes: list[Outcome],
    probes: list[dict[str, object]],
    origin: dict[str, str | None] | None = None,
) -> None:
    report: dict[str, object] = {
        # The lock this tool wrote (sha256 of pixi.lock) and the records it was solved from:
        # a pixi.lock with another hash was written by someone else (pixi), so a re-solve
        # from the snapshot is not expected to reproduce it.
        **(origin or {}),
        "manifest": ws.path.name,
        "channels": ws.channel_urls(),
        "environments": {},
        "unsolvable": [],
        "probes": probes,
    }
    for o in outcomes:
        report["environments"].setdefault(o.env, {})[o.platform.name] = o.summary()  # type: ignore[union-attr]
        if o.error:
            report["unsolvable"].append(
                {
                    "env": o.env,
                    "platform": o.platform.name,  # type: ignore[union-attr]
                    "missing": [m.as_dict() for m in o.missing],
                }
            )
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True) + "\n")


def print_outcome(o: Outcome) -> None:
    if o.error is None:
        keys = {r.name.normalized: r for r in o.records}
        shown = ", ".join(
            f"{n} {keys[n].version}"
            for n in ("python", "pytorch", "tensorflow", "cuda-version", "cudnn")
            if n in keys
        )
        print(f"  ok    {o.env:8} {o.platform.name:22} {len(o.records):4} packages  {shown}")
        return
    print(f"  FAIL  {o.env:8} {o.platform.name:22} cannot be solved from the snapshot")
    for m in o.missing:
        print(f"        missing: {m.name} {m.version} {m.build} ({m.subdir}): {m.reason}")
    if not o.missing:
        print("        every direct spec has records; they conflict:")
        print("        " + o.error.replace("\n", "\n        "))


def print_probe(probe: dict[str, object]) -> None:
    state = "solves" if probe["solved"] else "cannot be solved"
    print(f"  probe {probe['label']}: {state}")
    for m in probe.get("missing", []):  # type: ignore[attr-defined]
        print(
            f"        missing: {m['name']} {m['version']} {m['build']} ({m['subdir']}): "
            f"{m['reason']}"
        )


def lock_text(lock: LockFile, scratch: Path) -> str:
    lock.to_path(str(scratch))
    return scratch.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=REPO / "pixi.toml")
    parser.add_argument(
        "--channel-dir",
        type=Path,
        default=DEFAULT_CHANNEL_DIR,
        help="local conda channel (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="lock file to write (default: pixi.lock next to the manifest)",
    )
    parser.add_argument("--report", type=Path, help="write a JSON report of solves and probes")
    parser.add_argument("--no-probes", action="store_true", help="skip the documented probes")
    parser.add_argument(
        "--check",
        action="store_true",
        help="re-solve and compare with the existing lock; write nothing",
    )
    args = parser.parse_args(argv)
    output = args.output or args.manifest.parent / "pixi.lock"

    if not args.channel_dir.is_dir():
        print(f"lockgen: channel directory not found: {args.channel_dir}", file=sys.stderr)
        return 2
    started = time.monotonic()
    ws = mf.load(args.manifest)
    with Snapshot(args.channel_dir) as snap:
        outcomes = solve_all(ws, snap)
        probes = [] if args.no_probes else [run_probe(ws, snap, p) for p in PROBES]
    print(f"Solved {len(outcomes)} environment x platform combinations against {args.channel_dir}:")
    for o in outcomes:
        print_outcome(o)
    for p in probes:
        print_probe(p)
    failed = [o for o in outcomes if o.error]
    new_text = None
    if not failed:
        with tempfile.TemporaryDirectory() as tmp:
            new_text = lock_text(build_lock(ws, outcomes), Path(tmp) / "pixi.lock")
    if args.report:
        origin = {
            "lock_sha256": sha256_text(new_text) if new_text is not None else None,
            "snapshot_sha256": snapshot_sha256(args.channel_dir),
        }
        write_report(args.report, ws, outcomes, probes, origin)
        print(f"Report written to {args.report}")

    if new_text is None:
        print(
            f"lockgen: {len(failed)} combination(s) cannot be solved; {output} not written.",
            file=sys.stderr,
        )
        return 1
    elapsed = time.monotonic() - started
    if args.check:
        old_text = output.read_text(encoding="utf-8") if output.is_file() else ""
        if old_text != new_text:
            print(
                f"lockgen: {output} differs from a fresh solve ({elapsed:.1f} s)", file=sys.stderr
            )
            return 1
        print(f"{output} matches a fresh solve ({elapsed:.1f} s)")
        return 0
    write_atomic(output, new_text)
    print(f"Wrote {output} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
