"""The distribution: pixi.toml, pixi.lock and every file derived from them agree.

These tests read the real files. The ones that re-solve need the conda-forge record snapshot
at <repo>/../shared/conda-forge-snapshot and are skipped (with the reason) without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# Maintainer dependencies (py-rattler, PyYAML); the pixi environments need not carry them.
rattler = pytest.importorskip("rattler")
yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import derive  # noqa: E402
import lockgen  # noqa: E402
import manifest as mf  # noqa: E402
from pixi_written import resolve_skip_reason  # noqa: E402
from snapshot import missing_from_message  # noqa: E402

from envcheck.errors import EnvcheckError  # noqa: E402
from envcheck.lockaudit.manifest import selector_matches, tomllib  # noqa: E402
from envcheck.lockaudit.virtuals import default_virtuals  # noqa: E402
from envcheck.profiles import PROFILES, resolve_frameworks  # noqa: E402

SNAPSHOT = REPO.parent / "shared" / "conda-forge-snapshot"
needs_snapshot = pytest.mark.skipif(
    not (SNAPSHOT / "linux-64" / "repodata.json").is_file(),
    reason=f"conda-forge record snapshot not found at {SNAPSHOT}",
)
CONDA_FORGE = "https://conda.anaconda.org/conda-forge/"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 10x faster


@pytest.fixture(scope="module")
def ws() -> mf.Workspace:
    return mf.load(REPO / "pixi.toml")


@pytest.fixture(scope="module")
def lock() -> rattler.LockFile:
    return rattler.LockFile.from_path(str(REPO / "pixi.lock"))


def env_platform_pairs(ws: mf.Workspace) -> list[tuple[str, mf.PlatformDecl]]:
    return [(env, p) for env in sorted(ws.environments) for p in ws.env_platforms(env)]


def locked(lock: rattler.LockFile, env: str, platform_name: str) -> list:
    environment = lock.environment(env)
    assert environment is not None, f"pixi.lock has no environment {env!r}"
    for p in environment.platforms():
        if p.name == platform_name:
            return environment.conda_repodata_records_for_platform(p) or []
    raise AssertionError(f"pixi.lock has no {env}/{platform_name}")


# -- pixi.lock against pixi.toml (pixi's satisfiability rules) ---------------------------------
def test_lock_has_exactly_the_manifest_environments_and_platforms(ws, lock):
    assert sorted(name for name, _ in lock.environments()) == sorted(ws.environments)
    for env in ws.environments:
        locked_names = sorted(p.name for p in lock.environment(env).platforms())
        assert locked_names == sorted(p.name for p in ws.env_platforms(env)), env


def test_lock_platform_entries_carry_the_declared_virtual_packages(ws, lock):
    # pixi >= 0.71 compares `cuda = "12.0"` literally with `__cuda=12.0` in the lock entry.
    # The subdir's defaults may be left out (pixi matches platforms without them); the
    # byte-for-byte re-solve checks that tools/lockgen.py writes them as pixi does.
    by_name = {p.name: p for p in lock.platforms()}
    for env in ws.environments:
        for platform in ws.env_platforms(env):
            entry = by_name[platform.name]
            assert str(entry.subdir) == platform.subdir
            defaults = {str(v) for v in default_virtuals(platform.subdir)}
            have = set(entry.virtual_packages) - defaults
            assert have == set(mf.lock_virtuals(platform)) - defaults, platform.name
    cuda = {
        name: [v for v in p.virtual_packages if v.startswith("__cuda=")]
        for name, p in by_name.items()
    }
    assert cuda["linux-64-cuda12"] == ["__cuda=12.0"]
    assert cuda["linux-64"] == []


def test_lock_channels_are_the_manifest_channels(ws, lock):
    for env in ws.environments:
        urls = [str(c).rstrip("/") + "/" for c in lock.environment(env).channels()]
        assert urls == ws.channel_urls() == [CONDA_FORGE]


def test_every_record_is_a_real_conda_forge_artifact(ws, lock):
    for env, platform in env_platform_pairs(ws):
        for record in locked(lock, env, platform.name):
            assert record.url.startswith(
                (f"{CONDA_FORGE}{platform.subdir}/", f"{CONDA_FORGE}noarch/")
            ), record.url
            assert record.sha256 is not None and len(record.sha256.hex()) == 64, record.url
            assert record.md5 is not None, record.url


def test_every_manifest_spec_and_constraint_is_satisfied(ws, lock):
    for env, platform in env_platform_pairs(ws):
        records = {r.name.normalized: r for r in locked(lock, env, platform.name)}
        for spec in ws.specs(env, platform):
            ms = rattler.MatchSpec(spec)
            record = records.get(ms.name.normalized)
            assert record is not None and ms.matches(record), f"{env}/{platform.name}: {spec}"
        for constraint in ws.constraints(env, platform):
            ms = rattler.MatchSpec(constraint)
            record = records.get(ms.name.normalized)
            if record is not None:
                assert ms.matches(record), f"{env}/{platform.name}: constraint {constraint}"


def _virtual_satisfied(dep: rattler.MatchSpec, vps: list[mf.Virtual]) -> bool:
    for vp in vps:
        if vp.name != dep.name.normalized:
            continue
        version_ok = dep.version is None or rattler.VersionSpec(str(dep.version)).matches(
            rattler.Version(vp.version)
        )
        return version_ok and (dep.build is None or str(dep.build) in ("*", vp.build))
    return False


def test_lock_is_closed_consistent_and_minimal(ws, lock):
    """Every dependency of every record is locked (or a declared virtual package), and every
    locked record is needed by the manifest specs: pixi rejects locks with extra packages."""
    for env, platform in env_platform_pairs(ws):
        records = {r.name.normalized: r for r in locked(lock, env, platform.name)}
        vps = mf.solve_virtuals(platform)
        reachable: set[str] = set()
        todo = [rattler.MatchSpec(s).name.normalized for s in ws.specs(env, platform)]
        while todo:
            name = todo.pop()
            if name in reachable:
                continue
            reachable.add(name)
            for dep in records[name].depends:
                ms = rattler.MatchSpec(dep)
                dep_name = ms.name.normalized
                if dep_name.startswith("__"):
                    assert _virtual_satisfied(ms, vps), f"{env}/{platform.name}: {name} -> {dep}"
                    continue
                assert dep_name in records and ms.matches(records[dep_name]), (
                    f"{env}/{platform.name}: {name} needs {dep}, not satisfied by the lock"
                )
                todo.append(dep_name)
        for record in records.values():
            for constraint in record.constrains:
                ms = rattler.MatchSpec(constraint)
                other = records.get(ms.name.normalized)
                assert other is None or ms.matches(other), (
                    f"{env}/{platform.name}: {record.name.normalized} constrains {constraint}"
                )
        assert set(records) == reachable, (
            f"{env}/{platform.name}: not needed by any spec: {sorted(set(records) - reachable)}"
        )


def test_default_environment_is_the_cpu_environment(ws, lock):
    assert ws.environments["default"].features == ws.environments["cpu"].features
    for platform in ws.env_platforms("cpu"):
        urls = sorted(r.url for r in locked(lock, "cpu", platform.name))
        assert urls == sorted(r.url for r in locked(lock, "default", platform.name))


def _activation_env(ws: mf.Workspace, env: str, platform: mf.PlatformDecl) -> dict[str, str]:
    data = tomllib.loads((REPO / "pixi.toml").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for feature in ws.environments[env].features:
        table = data if feature == mf.DEFAULT_FEATURE else data["feature"][feature]
        out.update(table.get("activation", {}).get("env", {}))
        for selector, target in table.get("target", {}).items():
            if selector_matches(selector, platform):
                out.update(target.get("activation", {}).get("env", {}))
    return out


def test_activation_names_exactly_the_frameworks_the_lock_installs(ws, lock, monkeypatch):
    monkeypatch.delenv("ENVCHECK_FRAMEWORKS", raising=False)
    for env, platform in env_platform_pairs(ws):
        activation = _activation_env(ws, env, platform)
        names = {r.name.normalized for r in locked(lock, env, platform.name)}
        installed = {
            fw for fw, pkg in (("torch", "pytorch"), ("tensorflow", "tensorflow")) if pkg in names
        }
        if not installed:  # e.g. doctor: no framework, so nothing for verify to expect
            assert "ENVCHECK_FRAMEWORKS" not in activation, f"{env}/{platform.name}"
            assert "ENVCHECK_PROFILE" not in activation, f"{env}/{platform.name}"
            continue
        claimed = set(activation["ENVCHECK_FRAMEWORKS"].split(","))
        assert claimed == installed, f"{env}/{platform.name}"
        profile = PROFILES[activation["ENVCHECK_PROFILE"]]
        cuda = [int(vp.version.split(".")[0]) for vp in platform.declared if vp.name == "__cuda"]
        assert profile.cuda_major == (cuda[0] if cuda else None), f"{env}/{platform.name}"
        # verify's profile knows what each platform holds: an env named after its profile holds
        # exactly the profile's frameworks there; a PyTorch-alone env (torch-*) a subset.
        on_subdir = set(profile.frameworks_on(platform.subdir))
        if env in (profile.name, "default"):
            assert installed == on_subdir, f"{env}/{platform.name}"
            # Outside pixi (no activation), verify expects the same from the profile alone.
            assert set(resolve_frameworks(None, profile, platform.subdir)) == installed
        assert installed <= on_subdir, f"{env}/{platform.name}"
        gpu_tf = "tensorflow" in installed and platform.declared
        assert ("XLA_FLAGS" in activation) == bool(gpu_tf), f"{env}/{platform.name}"
        if gpu_tf:
            assert activation["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
            assert activation["XLA_FLAGS"] == "--xla_gpu_cuda_data_dir=$CONDA_PREFIX"


def test_gpu_environments_hold_one_cuda_line_and_no_cpu_framework(ws, lock):
    for env, platform in env_platform_pairs(ws):
        records = {r.name.normalized: r for r in locked(lock, env, platform.name)}
        builds = {
            n: str(records[n].build)
            for n in ("pytorch", "libtorch", "tensorflow-base")
            if n in records
        }
        cuda = [vp.version for vp in platform.declared if vp.name == "__cuda"]
        if not cuda:
            assert all(b.startswith("cpu_") for b in builds.values()), (env, builds)
            assert "cuda-version" not in records and "cudnn" not in records, env
            continue
        major = cuda[0].split(".")[0]
        line = str(records["cuda-version"].version)
        assert line.split(".")[0] == major, (env, line)
        assert all(b.startswith(f"cuda{major}") for b in builds.values()), (env, builds)
        if major == "12":  # cuDNN >= 9.11 for CUDA 12 was withdrawn (pre-Turing segfaults)
            for name in ("cudnn", "libcudnn"):
                if name in records:
                    assert rattler.VersionSpec("<9.11").matches(records[name].version), env


# -- derived files -----------------------------------------------------------------------------
def test_environment_and_explicit_files_are_regenerated_identically(ws, lock, tmp_path):
    derive.render_all(ws, lock, tmp_path, p2cl=None)
    problems = derive.compare_trees(tmp_path, REPO, with_conda_lock=False)
    assert problems == [], "run `python tools/derive.py`: " + "; ".join(problems)


def test_explicit_files_list_the_locked_urls_with_sha256(ws, lock):
    for env in derive.exported_environments(ws):
        for platform in ws.env_platforms(env):
            text = (REPO / "locks" / "explicit" / f"{env}-{platform.subdir}.txt").read_text()
            assert "@EXPLICIT" in text.splitlines()
            lines = {ln for ln in text.splitlines() if ln.startswith("https://")}
            expected = {
                f"{r.url}#sha256:{r.sha256.hex()}" for r in locked(lock, env, platform.name)
            }
            assert lines == expected, f"{env}/{platform.name}"


def test_conda_lock_files_hold_the_same_packages_and_hashes(ws, lock):
    for env in derive.exported_environments(ws):
        text = (REPO / "locks" / f"{env}.conda-lock.yml").read_text()
        data = yaml.load(text, Loader=YAML_LOADER)
        platforms = ws.env_platforms(env)
        assert data["version"] == 1
        assert data["metadata"]["platforms"] == sorted(p.subdir for p in platforms)
        assert [c["url"] for c in data["metadata"]["channels"]] == ["conda-forge"]
        # conda-lock resolves sources against the lock file's folder: it must name pixi.lock.
        sources = [(REPO / "locks" / s).resolve() for s in data["metadata"]["sources"]]
        assert sources == [REPO / "pixi.lock"], data["metadata"]["sources"]
        for platform in platforms:
            rows = {
                (p["name"], p["url"], p["hash"]["sha256"], p["hash"]["md5"])
                for p in data["package"]
                if p["platform"] == platform.subdir
            }
            expected = {
                (r.name.normalized, r.url, r.sha256.hex(), r.md5.hex())
                for r in locked(lock, env, platform.name)
            }
            assert rows == expected, f"{env}/{platform.name}"
            assert all(p["manager"] == "conda" and p["category"] == "main" for p in data["package"])


def _env_file_lines(env: str, index: int, platform: mf.PlatformDecl) -> list[str]:
    path = REPO / "environments" / derive.environment_file_name(env, index, platform)
    return path.read_text(encoding="utf-8").splitlines()


def test_environment_files_carry_every_constraint_conda_can_express(ws, lock):
    """A conda env file has no constraints section: a [constraints] entry is a dependency
    where the lock installs the package anyway, and is named as dropped everywhere else."""
    carried_any = False
    for env in derive.exported_environments(ws):
        for index, platform in enumerate(ws.env_platforms(env)):
            lines = _env_file_lines(env, index, platform)
            deps = set(yaml.safe_load("\n".join(lines))["dependencies"])
            comments = " ".join(ln for ln in lines if ln.startswith("#"))
            names = {r.name.normalized for r in locked(lock, env, platform.name)}
            constraints = ws.raw_requirements(env, platform, "constraints")
            for name, values in constraints.items():
                for value in values:
                    spec = derive.conda_spec(name, value)
                    if name in names:
                        assert spec in deps, f"{env}/{platform.name}: {spec} not carried"
                        carried_any = True
                    else:
                        assert spec not in deps and spec in comments, f"{env}/{platform.name}"
                        assert "does not install" in comments
            # Every dependency line is a manifest spec or constraint, as conda reads it.
            for dep in deps:
                ms = rattler.MatchSpec(dep)
                assert ms.name.normalized in set(constraints) | set(
                    ws.raw_requirements(env, platform, "conda")
                ), f"{env}/{platform.name}: {dep}"
    assert carried_any  # the cuDNN, cudatoolkit and build-string pins reach conda users
    cuda12 = _env_file_lines("cuda12", 0, ws.platforms["linux-64-cuda12"])
    assert "- cudnn <9.11" in cuda12 and "- libtorch * cuda12*" in cuda12
    cuda11 = _env_file_lines("cuda11", 0, ws.platforms["linux-64-cuda11"])
    assert "- cudatoolkit 11.8.*" in cuda11 and "- cudnn 8.*" in cuda11


def test_no_derived_files_for_environments_that_do_not_exist(ws):
    envs = set(derive.exported_environments(ws))
    for path in (REPO / "locks").glob("*.conda-lock.yml"):
        assert path.name.split(".")[0] in envs, path


# -- the manifest reader and tools/manifest.py read pixi's syntax the way pixi does -------------
def _only_platform(tmp_path: Path, entry: str) -> mf.PlatformDecl:
    path = tmp_path / "pixi.toml"
    path.write_text(f'[workspace]\nchannels = ["conda-forge"]\nplatforms = [{entry}]\n')
    (platform,) = mf.load(path).platforms.values()
    return platform


def test_rich_platform_virtual_packages_match_pixi(tmp_path):
    p = _only_platform(tmp_path, '{ name = "gpu", platform = "linux-64", cuda = "12.0" }')
    assert mf.lock_virtuals(p) == [
        "__cuda=12.0",
        "__unix=0=0",
        "__linux=4.18",
        "__glibc=2.28",
        "__archspec=0=x86_64",
    ]
    # Solving needs __archspec version 1: _x86_64-microarch-level depends on `__archspec 1.*`.
    assert [v for v in mf.solve_virtuals(p) if v.name == "__archspec"] == [
        mf.Virtual("__archspec", "1", "x86_64")
    ]
    assert mf.lock_virtuals(_only_platform(tmp_path, '"win-64"')) == [
        "__win=10.0",
        "__archspec=0=x86_64",
    ]


def test_target_selectors_follow_pixi():
    rich = mf.PlatformDecl("linux-64-cuda12", "linux-64", (mf.Virtual("__cuda", "12.0"),))
    assert selector_matches("linux-64-cuda12", rich)
    assert selector_matches("linux-64", rich)  # subdir selectors apply to rich platforms
    assert selector_matches("unix", rich) and selector_matches("linux", rich)
    assert selector_matches("*-cuda12", rich)
    assert not selector_matches("win-64", rich)
    assert not selector_matches("linux-64-cuda13", rich)


def test_matchspec_conversion():
    assert mf.matchspec("numpy", "*") == "numpy"
    assert mf.matchspec("python", "3.12.*") == 'python[version="3.12.*"]'
    assert mf.matchspec("pytorch", {"version": ">=2.7", "build": "cpu_*"}) == (
        'pytorch[version=">=2.7", build="cpu_*"]'
    )
    with pytest.raises(EnvcheckError):
        mf.matchspec("x", {"git": "https://example.invalid"})


def test_solver_explanations_name_the_missing_records():
    message = (
        "Cannot solve the request because of: jupyterlab * cannot be installed because ...\n"
        "├─ jupyterlab 4.6.1 would require\n"
        "│  └─ ipykernel >=6.5.0, which cannot be installed because ...\n"
        "│     ├─ ipykernel 6.28.0 | 7.3.0 would require\n"
        "│     │  └─ __win *, for which no candidates were found.\n"
        "│     └─ ipykernel 6.28.0 | 7.3.0 would require\n"
        "│        └─ debugpy >=1.6.5, for which no candidates were found.\n"
    )
    missing = missing_from_message(message, "linux-aarch64")
    assert [(m.name, m.version, m.subdir) for m in missing] == [
        ("debugpy", ">=1.6.5", "linux-aarch64")
    ]
    assert "ipykernel 6.28.0 | 7.3.0" in missing[0].reason


# -- re-solving from the snapshot ---------------------------------------------------------------
@needs_snapshot
def test_lockgen_resolves_to_the_committed_lock_and_report(tmp_path, capsys):
    # Only a lock tools/lockgen.py wrote, from this snapshot, re-solves to itself; any lock
    # (pixi's too) must pass `envcheck lock` and the derived-file tests above.
    reason = resolve_skip_reason(
        REPO / "pixi.lock", REPO / "locks" / "solve-report.json", lockgen.snapshot_sha256(SNAPSHOT)
    )
    if reason:
        pytest.skip(reason)
    report = tmp_path / "solve-report.json"
    rc = lockgen.main(["--check", "--channel-dir", str(SNAPSHOT), "--report", str(report)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    committed = json.loads((REPO / "locks" / "solve-report.json").read_text())
    assert json.loads(report.read_text()) == committed, (
        "locks/solve-report.json is stale: run `python tools/lockgen.py --report "
        "locks/solve-report.json`"
    )


def test_report_records_why_combinations_are_left_out():
    report = json.loads((REPO / "locks" / "solve-report.json").read_text())
    probes = {p["label"]: p for p in report["probes"]}
    cuda11_tf = probes["cuda11: GPU TensorFlow next to PyTorch"]
    assert cuda11_tf["solved"] is False
    assert {m["name"] for m in cuda11_tf["missing"]} == {"tensorflow"}
    newest = probes["cuda12/linux-64: newest PyTorch (>=2.12) next to TensorFlow"]
    assert newest["solved"] is False and "libprotobuf" in newest["missing"][0]["reason"]
    for label, probe in probes.items():
        assert probe["solved"] or probe["missing"], f"{label}: unsolvable but nothing named"
    assert report["unsolvable"] == []
