"""Drift: does the installed environment still hold exactly what the lock says?

Compares `$CONDA_PREFIX/conda-meta/*.json` (one file per installed conda package) with the
lock's records for this environment and platform, name -> sha256: a package missing, one
installed by hand, or one replaced by another build all mean the env is no longer the locked
one. Works without py-rattler (see lockscan.py), so it can run inside every pixi env.
"""

from __future__ import annotations

import json
import os
import platform as _platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .findings import Finding, Scope
from .lockscan import ScannedLock, ScannedRecord, scan_lock

CHECK = "drift"


def current_subdir() -> str:
    """The conda subdir of this machine (rattler's Platform.current(), without rattler)."""
    machine = _platform.machine().lower()
    if sys.platform.startswith("linux"):
        arch = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "aarch64"}
        return f"linux-{arch.get(machine, machine)}"
    if sys.platform == "darwin":
        return "osx-arm64" if machine == "arm64" else "osx-64"
    if sys.platform.startswith("win"):
        return "win-arm64" if machine in ("arm64", "aarch64") else "win-64"
    return f"{sys.platform}-{machine}"


def pixi_env_name(
    prefix: str | Path | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """$PIXI_ENVIRONMENT_NAME, else the name of a `.pixi/envs/<name>` prefix, else None."""
    name = (os.environ if environ is None else environ).get("PIXI_ENVIRONMENT_NAME")
    if name:
        return name
    if prefix:
        p = Path(prefix)
        if p.parent.name == "envs" and p.parent.parent.name == ".pixi":
            return p.name
    return None


def current_env_name(prefix: str | Path | None = None) -> str:
    """The active pixi environment's name (see pixi_env_name), else default."""
    return pixi_env_name(prefix) or "default"


def conda_base_reason(prefix: str | Path, environ: Mapping[str, str]) -> str | None:
    """Why ``prefix`` is conda's own base environment (which `conda init` activates in every
    shell), or None. Base was never installed from pixi.lock: comparing it says nothing."""
    if environ.get("CONDA_DEFAULT_ENV") == "base" or Path(prefix, "condabin").is_dir():
        return (
            f"{prefix} is conda's base environment (auto-activated), not one installed from "
            "pixi.lock; activate the project's environment to check drift"
        )
    return None


@dataclass(frozen=True)
class LockEnvChoice:
    """Which lock environment an installed env is compared with, and why (None: not at all)."""

    env: str | None
    reason: str
    pixi: bool = False  # the prefix is a pixi env (so `pixi reinstall` is the fix)


def choose_lock_env(
    lock_path: str | Path,
    prefix: str | Path,
    named: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LockEnvChoice:
    """The active pixi env; else (conda's base env: none) the env ``named`` by the profile;
    else the lock environment whose records for this machine the prefix matches best."""
    environ = os.environ if environ is None else environ
    pixi = pixi_env_name(prefix, environ)
    if pixi:
        return LockEnvChoice(pixi, "the active pixi environment", pixi=True)
    base = conda_base_reason(prefix, environ)
    if base:
        return LockEnvChoice(None, base)
    try:
        lock = scan_lock(lock_path)
    except (OSError, UnicodeDecodeError, ValueError):
        return LockEnvChoice(named or "default", "unreadable lock")  # drift_findings says why
    if named and named in lock.envs:
        return LockEnvChoice(named, "named by the profile")
    installed, _ = installed_records(prefix)
    subdir = current_subdir()
    differences = {}
    for env in sorted(lock.envs):
        plat = _pick_platform(lock, env, subdir, installed)
        if plat is not None:
            locked = lock.records(env, plat)
            differences[env] = (len(compare(env, plat, locked, installed)), len(locked))
    if not differences:
        return LockEnvChoice(None, f"pixi.lock has no environment for {subdir}")
    # fewest differences; of twins (`default` is `cpu`), the one locks/explicit/ has files for
    best = min(differences, key=lambda e: (differences[e][0], e == "default", e))
    diff, total = differences[best]
    if diff > total // 2:
        return LockEnvChoice(
            None,
            f"{prefix} was not installed from pixi.lock (the closest environment, {best}, "
            f"differs in {diff} of {total} packages); name the environment with --expect to "
            "compare it anyway",
        )
    return LockEnvChoice(best, "the closest match by content")


def default_lock_path() -> Path:
    """pixi.lock of the active pixi workspace ($PIXI_PROJECT_ROOT), else of the cwd."""
    root = os.environ.get("PIXI_PROJECT_ROOT")
    return Path(root) / "pixi.lock" if root else Path("pixi.lock")


def drift_skip_reason(lock_path: str | Path | None, prefix: str | Path | None) -> str | None:
    """None when drift can be checked, else why not (for a SKIP result)."""
    if not prefix:
        return "not inside a conda/pixi environment ($CONDA_PREFIX is unset)"
    if not (Path(prefix) / "conda-meta").is_dir():
        return f"{prefix} has no conda-meta directory: not a conda/pixi environment"
    if not lock_path or not Path(lock_path).is_file():
        return f"no pixi.lock at {lock_path or default_lock_path()}"
    return None


def installed_records(prefix: str | Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """name -> conda-meta record, and the files that could not be read.

    Plain json, not py-rattler's PrefixRecord: it must run without rattler and tolerate
    records written by any conda installer (only name, version, build, sha256 are needed).
    """
    records: dict[str, dict[str, Any]] = {}
    bad = []
    for path in sorted(Path(prefix, "conda-meta").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records[str(data["name"]).lower()] = data
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(path.name)
    return records, bad


def drift_findings(
    lock_path: str | Path,
    prefix: str | Path,
    env_name: str | None = None,
    platform: str | None = None,
    fix: str | None = None,
) -> list[Finding]:
    """Findings (check "drift") for the env at `prefix` against `lock_path`; [] when in sync.

    env_name: default $PIXI_ENVIRONMENT_NAME (see current_env_name). platform: a lock
    platform name or subdir; default this machine's subdir. fix: how to restore the env
    (default: `pixi reinstall`).
    """
    env = env_name or current_env_name(prefix)
    try:
        lock = scan_lock(lock_path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [
            Scope(CHECK, env, platform or "-").error(
                "pixi.lock",
                f"cannot read {lock_path}: {exc}",
                "regenerate it with `pixi lock`",
            )
        ]
    if env not in lock.envs:
        known = ", ".join(sorted(lock.envs))
        return [
            Scope(CHECK, env, platform or "-").error(
                "-",
                f"environment {env!r} is not in {lock_path} (it has: {known})",
                "pass the right environment name or re-lock",
            )
        ]
    installed, bad = installed_records(prefix)
    plat = _pick_platform(lock, env, platform or current_subdir(), installed)
    if plat is None:
        subdir = platform or current_subdir()
        return [
            Scope(CHECK, env, subdir).error(
                "-",
                f"environment {env!r} has no {subdir} platform in the lock",
                "install an environment that supports this machine",
            )
        ]
    at = Scope(CHECK, env, plat)
    out = [
        at.warning(
            name,
            f"unreadable conda-meta file {name}",
            fix or f"`pixi reinstall --locked -e {env}`",
        )
        for name in bad
    ]
    return out + compare(env, plat, lock.records(env, plat), installed, fix)


def _pick_platform(
    lock: ScannedLock, env: str, wanted: str, installed: dict[str, dict[str, Any]]
) -> str | None:
    plats = lock.envs[env]
    if wanted in plats:
        return wanted
    candidates = [p for p in plats if lock.platforms.get(p, p) == wanted]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    # Several platforms of one subdir (e.g. CPU and CUDA variants): the installed env is the
    # one whose hashes it shares most.
    have = {r.get("sha256") for r in installed.values()}

    def overlap(p: str) -> int:
        return sum(1 for r in lock.records(env, p).values() if r.sha256 in have)

    return max(candidates, key=overlap)


def compare(
    env: str,
    plat: str,
    locked: dict[str, ScannedRecord],
    installed: dict[str, dict[str, Any]],
    fix: str | None = None,
) -> list[Finding]:
    at = Scope(CHECK, env, plat)
    fix = fix or f"run `pixi reinstall --locked -e {env}` to restore the locked environment"
    out = []
    for name, rec in sorted(locked.items()):
        got = installed.get(name)
        if got is None:
            out.append(
                at.error(
                    name,
                    f"{name} {rec.version} {rec.build} is locked but not installed",
                    fix,
                )
            )
            continue
        label = f"{got.get('version')} {got.get('build')}"
        if got.get("sha256") and rec.sha256:
            changed = got["sha256"] != rec.sha256
        else:  # no hash on one side: fall back to version and build
            changed = (got.get("version"), got.get("build")) != (rec.version, rec.build)
        if changed:
            out.append(
                at.error(
                    name,
                    f"installed {name} {label} (sha256 {_short(got.get('sha256'))}) "
                    f"differs from locked {rec.version} {rec.build} "
                    f"(sha256 {_short(rec.sha256)})",
                    fix,
                )
            )
    for name in sorted(set(installed) - set(locked)):
        got = installed[name]
        out.append(
            at.error(
                name,
                f"{name} {got.get('version')} {got.get('build')} is installed but not "
                "in the lock (installed by hand?)",
                fix,
            )
        )
    return out


def _short(sha: Any) -> str:
    return f"{sha[:12]}..." if isinstance(sha, str) and sha else "none"
