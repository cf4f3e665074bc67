"""envcheck lock: the real pixi.lock passes; each seeded defect fails with the right message."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from envcheck.errors import EnvcheckError
from envcheck.lockaudit import cmd
from envcheck.lockaudit.drift import current_subdir, drift_findings, drift_skip_reason
from envcheck.lockaudit.lockscan import scan_lock
from envcheck.lockaudit.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "pixi.toml"
LOCK = REPO / "pixi.lock"
CUDA12 = ("cuda12", "linux-64-cuda12")

needs_lock = pytest.mark.skipif(
    not (LOCK.is_file() and MANIFEST.is_file()), reason="pixi.toml/pixi.lock not generated yet"
)
Mutation = Callable[[str, str, list], list]


@pytest.fixture
def rattler() -> Any:
    return pytest.importorskip("rattler")


def audit(manifest: Path, envs: list[str] | None = None) -> list:
    from envcheck.lockaudit import audit as run_audit

    return run_audit(manifest, envs=envs).findings


def messages(findings: list) -> str:
    lines = [f"{f.severity} {f.env}/{f.platform} {f.package}: {f.message}" for f in findings]
    return "\n".join(lines)


def copy_workspace(tmp_path: Path, lock_text: str | None = None) -> Path:
    shutil.copy(MANIFEST, tmp_path / "pixi.toml")
    if lock_text is None:
        shutil.copy(LOCK, tmp_path / "pixi.lock")
    else:
        (tmp_path / "pixi.lock").write_text(lock_text, encoding="utf-8")
    return tmp_path / "pixi.toml"


def rebuild(tmp_path: Path, mutate: Mutation, source: Path = LOCK) -> Path:
    """The real lock (or `source`) re-written through py-rattler, with mutate(env, platform,
    records) applied to each environment x platform; returns the manifest path beside it."""
    from rattler import LockFile

    src = LockFile.from_path(source)
    out = LockFile(src.platforms())
    for name, env in src.environments():
        out.set_channels(name, env.channels())
        for plat in env.platforms():
            records = env.conda_repodata_records_for_platform(plat) or []
            for rec in mutate(name, plat.name, list(records)):
                out.add_conda_package(name, plat, rec)
    shutil.copy(MANIFEST, tmp_path / "pixi.toml")
    out.to_path(tmp_path / "pixi.lock")
    return tmp_path / "pixi.toml"


def records_of(env: str, plat: str) -> dict[str, Any]:
    from rattler import LockFile

    lock_env = LockFile.from_path(LOCK).environment(env)
    lock_plat = next(p for p in lock_env.platforms() if p.name == plat)
    return {r.name.normalized: r for r in lock_env.conda_repodata_records_for_platform(lock_plat)}


def only(env: str, plat: str, edit: Callable[[list], list]) -> Mutation:
    return lambda e, p, recs: edit(recs) if (e, p) == (env, plat) else recs


# -- the real lock ----------------------------------------------------------------------------


@needs_lock
def test_real_lock_passes(rattler: Any) -> None:
    findings = audit(MANIFEST)
    assert findings == [], messages(findings)


@needs_lock
def test_rattler_round_trip_still_passes(rattler: Any, tmp_path: Path) -> None:
    # Guards the mutation helper: an unmutated rebuild must audit clean.
    findings = audit(rebuild(tmp_path, lambda e, p, recs: recs), ["cuda12"])
    assert findings == [], messages(findings)


@needs_lock
def test_scan_matches_rattler(rattler: Any) -> None:
    """The rattler-free scan used by drift reads the same records py-rattler does."""
    scanned = scan_lock(LOCK)
    lock = rattler.LockFile.from_path(LOCK)
    for name, env in lock.environments():
        for plat in env.platforms():
            want = {
                r.name.normalized: (str(r.version), str(r.build), r.url, r.sha256.hex())
                for r in env.conda_repodata_records_for_platform(plat)
            }
            got = {
                k: (r.version, r.build, r.url, r.sha256)
                for k, r in scanned.records(name, plat.name).items()
            }
            assert got == want, (name, plat.name)
            assert scanned.platforms[plat.name] == str(plat.subdir)
            virtual = [str(v) for v in plat.virtual_packages]
            assert scanned.virtual_packages.get(plat.name, []) == virtual, plat.name
            for r in env.conda_repodata_records_for_platform(plat):
                assert scanned.depends.get(r.url, []) == list(r.depends), r.url


@needs_lock
def test_cmd_clean_run_and_json(rattler: Any, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "audit.json"
    rc = run_cmd("--manifest", str(MANIFEST), "--sizes", "--json", str(out))
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "OK" in text and "GiB" in text
    doc = json.loads(out.read_text())
    assert doc["status"] == "pass" and doc["findings"] == []
    assert {row["env"] for row in doc["sizes"]} == set(load_manifest(MANIFEST).envs)
    assert all(row["bytes"] > 0 for row in doc["sizes"])


def run_cmd(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return cmd.run(parser.parse_args(list(argv)))


# -- seeded defects ---------------------------------------------------------------------------


@needs_lock
def test_extra_package(rattler: Any, tmp_path: Path) -> None:
    cuda13 = records_of("cuda13", "linux-64-cuda13")
    # A record the cuda13 env does not need but whose own dependencies it has.
    candidates = [
        r
        for n, r in records_of(*CUDA12).items()
        if n not in cuda13
        and r.subdir == "noarch"
        and all(d.split()[0] in cuda13 or d.startswith("__") for d in r.depends)
    ]
    assert candidates, "no suitable extra record in the lock"
    extra = candidates[0]
    mutate = only("cuda13", "linux-64-cuda13", lambda recs: recs + [extra])
    findings = audit(rebuild(tmp_path, mutate), ["cuda13"])
    name = extra.name.normalized
    assert any(
        f.package == name and f.severity == "error" and f"extra record {name}" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_missing_dependency(rattler: Any, tmp_path: Path) -> None:
    assert "libzlib" in records_of(*CUDA12)
    mutate = only(*CUDA12, lambda recs: [r for r in recs if r.name.normalized != "libzlib"])
    findings = audit(rebuild(tmp_path, mutate), ["cuda12"])
    assert any(
        f.package == "libzlib"
        and "missing dependency:" in f.message
        and "needs 'libzlib" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_cpu_build_in_cuda12(rattler: Any, tmp_path: Path) -> None:
    cpu_torch = records_of("cpu", "linux-64")["pytorch"]
    assert str(cpu_torch.build).startswith("cpu")

    def swap(recs: list) -> list:
        return [cpu_torch if r.name.normalized == "pytorch" else r for r in recs]

    findings = audit(rebuild(tmp_path, only(*CUDA12, swap)), ["cuda12"])
    text = messages(findings)
    assert any(
        f.check == "policy"
        and f.package == "pytorch"
        and "is a CPU build in CUDA 12 env cuda12" in f.message
        and "cuda12*" in f.fix
        for f in findings
    ), text
    assert "does not satisfy manifest spec" in text  # pixi would reject it too


@needs_lock
def test_cpu_build_in_torch_cuda12_on_aarch64(rattler: Any, tmp_path: Path) -> None:
    # The policy covers every env x platform that declares CUDA, the Grace Hopper one too.
    aarch64 = ("torch-cuda12", "linux-aarch64-cuda12")
    cpu_torch = records_of("cpu", "linux-aarch64")["pytorch"]
    assert str(cpu_torch.build).startswith("cpu")

    def swap(recs: list) -> list:
        return [cpu_torch if r.name.normalized == "pytorch" else r for r in recs]

    findings = audit(rebuild(tmp_path, only(*aarch64, swap)), ["torch-cuda12"])
    assert any(
        f.check == "policy"
        and (f.env, f.platform) == aarch64
        and "is a CPU build in CUDA 12 env torch-cuda12" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_env_without_framework_audits_clean(rattler: Any) -> None:
    # doctor: python + rich only, no default feature, every plain platform.
    assert audit(MANIFEST, ["doctor"]) == []
    for plat in ("linux-64", "linux-aarch64", "osx-arm64", "win-64"):
        names = set(records_of("doctor", plat))
        assert {"python", "rich"} <= names and not names & {"pytorch", "tensorflow"}, plat


@needs_lock
def test_cuda_build_in_cpu_env(rattler: Any, tmp_path: Path) -> None:
    gpu_torch = records_of(*CUDA12)["pytorch"]

    def swap(recs: list) -> list:
        return [gpu_torch if r.name.normalized == "pytorch" else r for r in recs]

    findings = audit(rebuild(tmp_path, only("cpu", "linux-64", swap)), ["cpu"])
    assert any(
        f.package == "pytorch" and "is a CUDA 12 build in a CPU env" in f.message for f in findings
    ), messages(findings)


@needs_lock
def test_missing_sha256(rattler: Any, tmp_path: Path) -> None:
    def strip(recs: list) -> list:
        for r in recs:
            if r.name.normalized == "pytorch":
                r.sha256 = None
        return recs

    findings = audit(rebuild(tmp_path, only(*CUDA12, strip)), ["cuda12"])
    assert any(f.package == "pytorch" and "has no sha256" in f.message for f in findings), messages(
        findings
    )


@needs_lock
def test_garbage_sha256_is_a_malformed_lock(rattler: Any, tmp_path: Path) -> None:
    text = LOCK.read_text()
    sha = next(line for line in text.splitlines() if line.startswith("  sha256: "))
    manifest = copy_workspace(tmp_path, text.replace(sha, "  sha256: not-a-hash", 1))
    with pytest.raises(EnvcheckError, match="malformed lock file"):
        audit(manifest)


@needs_lock
def test_http_url(rattler: Any, tmp_path: Path) -> None:
    def downgrade(recs: list) -> list:
        for r in recs:
            if r.name.normalized == "pytorch":
                r.url = r.url.replace("https://", "http://")
        return recs

    findings = audit(rebuild(tmp_path, only(*CUDA12, downgrade)), ["cuda12"])
    assert any(
        f.package == "pytorch" and "fetched over plain http" in f.message for f in findings
    ), messages(findings)


@needs_lock
def test_cudnn_911_with_cuda12(rattler: Any, tmp_path: Path) -> None:
    from rattler import VersionWithSource

    names = [n for n in ("cudnn", "libcudnn") if n in records_of(*CUDA12)]
    assert names, "the cuda12 env locks no cuDNN"

    def bump(recs: list) -> list:
        for r in recs:
            if r.name.normalized in names:
                r.version = VersionWithSource("9.11.0.98")
        return recs

    findings = audit(rebuild(tmp_path, only(*CUDA12, bump)), ["cuda12"])
    assert any(
        f.package in names and "cuDNN >= 9.11 for CUDA 12 was withdrawn" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_wrong_cuda_line(rattler: Any, tmp_path: Path) -> None:
    from rattler import VersionWithSource

    def downgrade(recs: list) -> list:
        for r in recs:
            if r.name.normalized == "cuda-version":
                r.version = VersionWithSource("12.9")
        return recs

    findings = audit(rebuild(tmp_path, only("cuda13", "linux-64-cuda13", downgrade)), ["cuda13"])
    assert any(
        f.package == "cuda-version" and "wrong CUDA line for a CUDA 13 env" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_platform_virtual_packages_must_match_manifest(rattler: Any, tmp_path: Path) -> None:
    manifest = copy_workspace(tmp_path, LOCK.read_text().replace("__cuda=12.0", "__cuda=12.8"))
    findings = audit(manifest, ["cuda12"])
    assert any(
        f.platform == "linux-64-cuda12"
        and "declares __cuda=12.0, but the lock lacks __cuda=12.0 and the lock adds __cuda=12.8"
        in f.message
        for f in findings
    ), messages(findings)


def platform_entry_edit(text: str, name: str, old: str, new: str) -> str:
    """`text` with one line of lock platform `name`'s entry replaced (only that entry)."""
    head, sep, rest = text.partition("\nenvironments:\n")
    start = head.index(f"- name: {name}\n")
    end = head.find("\n- name: ", start + 1)
    end = len(head) if end < 0 else end
    entry = head[start:end]
    assert f"  - {old}\n" in entry + "\n", (name, old)
    return (
        head[:start]
        + (entry + "\n").replace(f"  - {old}\n", f"  - {new}\n")[:-1]
        + head[end:]
        + sep
        + rest
    )


# pixi's PlatformDefinitionChanged compares the EXACT set of non-default virtual packages of
# every lock platform, plain ones included; the audit used to skip plain platforms and, on
# named ones, only looked for the declared packages (and a stray __cuda).
@needs_lock
@pytest.mark.parametrize(
    ("env", "platform", "old", "new", "stray"),
    [
        ("cpu", "linux-64", "__glibc=2.28", "__glibc=2.34", "__glibc=2.34"),
        ("cpu", "linux-64", "__linux=4.18", "__linux=4.18\n  - __cuda=12.0", "__cuda=12.0"),
        ("cpu", "osx-arm64", "__osx=13.0", "__osx=14.0", "__osx=14.0"),
        ("cuda12", "linux-64-cuda12", "__glibc=2.28", "__glibc=2.34", "__glibc=2.34"),
        (
            "cuda13",
            "linux-64-cuda13",
            "__archspec=0=x86_64",
            "__archspec=0=x86_64_v3",
            "__archspec=0=x86_64_v3",
        ),
    ],
)
def test_every_platform_entry_must_equal_the_manifest_definition(
    rattler: Any, tmp_path: Path, env: str, platform: str, old: str, new: str, stray: str
) -> None:
    text = platform_entry_edit(LOCK.read_text(), platform, old, new)
    findings = audit(copy_workspace(tmp_path, text), [env])
    assert any(
        f.platform == platform
        and f"the lock adds {stray}" in f.message
        and "PlatformDefinitionChanged" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_dependencies_see_only_the_manifest_platform_s_virtual_packages(
    rattler: Any, tmp_path: Path
) -> None:
    # A CUDA PyTorch in the cpu env, and the lock's plain linux-64 entry claiming __cuda: pixi
    # checks `depends: __cuda` against the manifest's linux-64 (no CUDA), not the lock entry.
    source = tmp_path / "edited.lock"
    source.write_text(
        platform_entry_edit(
            LOCK.read_text(), "linux-64", "__linux=4.18", "__linux=4.18\n  - __cuda=12.0"
        )
    )
    gpu_torch = records_of(*CUDA12)["pytorch"]
    assert any(d.split()[0] == "__cuda" for d in gpu_torch.depends)

    def swap(recs: list) -> list:
        return [gpu_torch if r.name.normalized == "pytorch" else r for r in recs]

    (tmp_path / "ws").mkdir()
    findings = audit(rebuild(tmp_path / "ws", only("cpu", "linux-64", swap), source), ["cpu"])
    assert any(
        f.platform == "linux-64" and f.package == "pytorch" and "provides no __cuda" in f.message
        for f in findings
    ), messages(findings)


@needs_lock
def test_solve_group_members_must_agree(rattler: Any, tmp_path: Path) -> None:
    cpu, gpu = records_of("cpu", "linux-64"), records_of(*CUDA12)
    name = next(n for n in sorted(cpu) if n in gpu and cpu[n].url != gpu[n].url)

    def swap(recs: list) -> list:
        return [gpu[name] if r.name.normalized == name else r for r in recs]

    findings = audit(rebuild(tmp_path, only("default", "linux-64", swap)), ["default"])
    assert any(f.package == name and f.message.startswith("solve-group cpu: ") for f in findings), (
        messages(findings)
    )


def test_without_rattler_one_line_error(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "pixi.toml").write_text('[workspace]\nplatforms = ["linux-64"]\n')
    (tmp_path / "pixi.lock").write_text("version: 7\n")
    monkeypatch.setitem(sys.modules, "rattler", None)  # what Python 3.9 sees
    with pytest.raises(EnvcheckError, match="needs py-rattler"):
        run_cmd("--manifest", str(tmp_path / "pixi.toml"))


@needs_lock
def test_cmd_fails_on_defect(rattler: Any, tmp_path: Path, capsys: Any) -> None:
    mutate = only(*CUDA12, lambda recs: [r for r in recs if r.name.normalized != "libzlib"])
    manifest = rebuild(tmp_path, mutate)
    out = tmp_path / "audit.json"
    rc = run_cmd("--manifest", str(manifest), "--env", "cuda12", "--json", str(out))
    assert rc == 1
    assert "missing dependency" in capsys.readouterr().out
    assert json.loads(out.read_text())["status"] == "fail"


# -- malformed inputs: one clear error, no traceback -------------------------------------------


@needs_lock
@pytest.mark.parametrize(
    ("text", "match"),
    [
        (":: garbage [\n\t{{", "malformed lock file"),
        ("version: 99\nplatforms: []\nenvironments: {}\npackages: []\n", "version 99"),
        ("", "malformed lock file"),
    ],
)
def test_malformed_lock(rattler: Any, tmp_path: Path, text: str, match: str) -> None:
    manifest = copy_workspace(tmp_path, text)
    with pytest.raises(EnvcheckError, match=match):
        audit(manifest)


def test_missing_lock(rattler: Any, tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text(
        '[workspace]\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n'
    )
    with pytest.raises(EnvcheckError, match="no lock file at .*pixi lock"):
        audit(tmp_path / "pixi.toml")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[workspace\nname = 1", "malformed manifest .*TOML"),
        ('[workspace]\nplatforms = "linux-64"\n', "expected an array"),
        ("[dependencies]\nnumpy = '*'\n", "no \\[workspace\\] table"),
        (
            '[workspace]\nplatforms = ["linux-64"]\n[feature.x]\nplatforms = ["win-64"]\n',
            "unknown platform 'win-64'",
        ),
        (
            '[workspace]\nplatforms = ["linux-64"]\n[environments]\ngpu = ["nope"]\n',
            "unknown feature 'nope'",
        ),
        ('[workspace]\nplatforms = ["linux-64"]\n[dependencies]\nnumpy = 3\n', "numpy = 3"),
    ],
)
def test_malformed_manifest(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "pixi.toml").write_text(text)
    with pytest.raises(EnvcheckError, match=match):
        load_manifest(tmp_path / "pixi.toml")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(EnvcheckError, match="no manifest at .*--manifest"):
        load_manifest(tmp_path / "pixi.toml")


@needs_lock
def test_unknown_env(rattler: Any) -> None:
    with pytest.raises(EnvcheckError, match="unknown environment nope; .* defines: .*cuda12") as e:
        audit(MANIFEST, ["nope"])
    assert e.value.exit_code == 2


# -- manifest semantics -----------------------------------------------------------------------


def test_manifest_targets_constraints_and_system_requirements(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text(
        """
[workspace]
channels = ["conda-forge"]
platforms = ["linux-64", "osx-arm64", { name = "lx-cu13", platform = "linux-64", cuda = "13.0" }]

[dependencies]
python = "3.12.*"

[target.linux-64.dependencies]
python = "3.11.*"

[system-requirements]
cuda = "12"

[feature.gpu]
platforms = ["linux-64", "osx-arm64"]

[feature.gpu.target.unix.dependencies]
pytorch = { version = ">=2.7", build = "cuda12*" }

[feature.gpu.constraints]
cudnn = "<9.11"

[feature.new]
platforms = ["lx-cu13"]

[environments]
gpu = ["gpu"]
new = { features = ["new"], no-default-feature = true }
"""
    )
    m = load_manifest(tmp_path / "pixi.toml")
    assert list(m.envs) == ["gpu", "new", "default"]
    gpu = m.envs["gpu"]
    assert gpu.channels == ["https://conda.anaconda.org/conda-forge/"]
    assert list(gpu.platforms) == ["linux-64", "osx-arm64"]
    linux = gpu.platforms["linux-64"]
    assert linux.specs["python"] == ["python 3.11.*"]  # the target table wins
    assert linux.specs["pytorch"] == ['pytorch[version=">=2.7", build="cuda12*"]']
    assert linux.constraints == {"cudnn": ["cudnn <9.11"]}
    assert linux.cuda_major == 12  # from [system-requirements]
    assert gpu.platforms["osx-arm64"].cuda is None  # no CUDA on macOS
    # A feature without channels takes the workspace's, as in pixi (no-default-feature too).
    assert m.envs["new"].channels == ["https://conda.anaconda.org/conda-forge/"]
    new = m.envs["new"].platforms["lx-cu13"]
    assert new.specs == {} and new.cuda == "13.0" and new.platform.subdir == "linux-64"


# pixi 0.77 rejects any key of a named-platform table it does not know
# (pixi_manifest/src/toml/platform.rs: TableHelper::finalize); so must the audit.
@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            '{ name = "linux-64-cuda12", platform = "linux-64"',
            '{ name = "linux-64-cuda12", subdir = "linux-64"',
            "unknown key 'subdir'; `subdir` is pixi 0.85's name for `platform`",
        ),
        (
            'platform = "linux-64", cuda = "12.0" }',
            'platform = "linux-64", cuda = "12.0", libc = "2.28" }',
            "unknown key 'libc'; write `glibc",
        ),
        (
            'platform = "win-64", cuda = "12.0" }',
            'platform = "win-64", cuda = "12.0", win = "10.0" }',
            "unknown key 'win'; write `windows",
        ),
        ('cuda = "13.0" }', 'cuda = { version = "13.0" } }', "takes `driver` \\(required\\)"),
        ('cuda = "13.0" }', "cuda = 13 }", "neither a version string nor a table"),
    ],
)
def test_manifest_rejects_platform_keys_pixi_rejects(
    tmp_path: Path, old: str, new: str, match: str
) -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "pixi.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(EnvcheckError, match=match):
        load_manifest(tmp_path / "pixi.toml")


@needs_lock
def test_subdir_key_is_accepted_once_requires_pixi_admits_only_0_85(
    rattler: Any, tmp_path: Path
) -> None:
    # pixi 0.85 renamed `platform` to `subdir` (release notes); a workspace that requires it
    # may use the new key, and means the same platforms.
    text = MANIFEST.read_text(encoding="utf-8")
    assert 'requires-pixi = ">=0.78"' in text
    text = text.replace('requires-pixi = ">=0.78"', 'requires-pixi = ">=0.85"')
    text = text.replace('", platform = "', '", subdir = "')
    manifest = copy_workspace(tmp_path)
    manifest.write_text(text, encoding="utf-8")
    assert load_manifest(manifest).platforms == load_manifest(MANIFEST).platforms
    findings = audit(manifest, ["cuda12"])
    assert findings == [], messages(findings)


def test_system_requirements_reject_keys_pixi_rejects(tmp_path: Path) -> None:
    # [system-requirements] takes cuda, libc, linux, macos and archspec (pixi 0.77).
    base = '[workspace]\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n'
    (tmp_path / "pixi.toml").write_text(base + '[system-requirements]\nglibc = "2.28"\n')
    with pytest.raises(EnvcheckError, match="unknown key 'glibc'"):
        load_manifest(tmp_path / "pixi.toml")
    (tmp_path / "pixi.toml").write_text(
        base + '[system-requirements]\nlibc = { family = "glibc", version = "2.34" }\n'
    )
    linux = load_manifest(tmp_path / "pixi.toml").envs["default"].platforms["linux-64"]
    assert str(linux.declared["__glibc"]) == "__glibc=2.34"


def test_target_macos_is_the_osx_family(tmp_path: Path) -> None:
    # pixi 0.77 reads `target.macos` as `target.osx` (family_name_to_selector in target.rs).
    (tmp_path / "pixi.toml").write_text(
        '[workspace]\nchannels = ["conda-forge"]\nplatforms = ["osx-arm64", "linux-64"]\n'
        '[target.macos.dependencies]\nllvm-openmp = "*"\n'
    )
    env = load_manifest(tmp_path / "pixi.toml").envs["default"]
    assert env.platforms["osx-arm64"].specs == {"llvm-openmp": ["llvm-openmp"]}
    assert env.platforms["linux-64"].specs == {}


def test_unnamed_platform_entries_get_pixi_s_derived_names(tmp_path: Path) -> None:
    # The names pixi 0.77's own tests expect (toml/platform.rs).
    (tmp_path / "pixi.toml").write_text(
        '[workspace]\nchannels = ["conda-forge"]\nplatforms = ["linux-64", '
        '{ platform = "linux-64", cuda = { driver = "12.0", arch = "8.6" } }, '
        '{ platform = "linux-64", cuda = "12.0", glibc = "2.28" }]\n'
    )
    platforms = load_manifest(tmp_path / "pixi.toml").platforms
    assert list(platforms) == ["linux-64", "linux-64-cuda-12-0-cuda-arch-8-6", "linux-64-cuda-12-0"]
    arch = platforms["linux-64-cuda-12-0-cuda-arch-8-6"]
    assert [str(v) for v in arch.declared] == ["__cuda=12.0", "__cuda_arch=8.6"]
    # A subdir-named entry cannot carry virtual packages (pixi: IsSubdirPlatform).
    (tmp_path / "pixi.toml").write_text(
        '[workspace]\nchannels = ["conda-forge"]\n'
        'platforms = [{ platform = "linux-64", glibc = "2.28" }]\n'
    )
    with pytest.raises(EnvcheckError, match="named after its subdir"):
        load_manifest(tmp_path / "pixi.toml")


# -- drift ------------------------------------------------------------------------------------


def fake_prefix(tmp_path: Path, env: str, plat: str) -> Path:
    """A prefix whose conda-meta holds exactly the lock's records for env x platform."""
    meta = tmp_path / "prefix" / "conda-meta"
    meta.mkdir(parents=True)
    for rec in scan_lock(LOCK).records(env, plat).values():
        doc = {
            "name": rec.name,
            "version": rec.version,
            "build": rec.build,
            "sha256": rec.sha256,
            "url": rec.url,
            "files": [],
        }
        (meta / f"{rec.name}-{rec.version}-{rec.build}.json").write_text(json.dumps(doc))
    (meta / "history").write_text("")  # not a record: ignored
    return meta.parent


@needs_lock
def test_drift_in_sync(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, *CUDA12)
    assert drift_skip_reason(LOCK, prefix) is None
    assert drift_findings(LOCK, prefix, "cuda12", "linux-64-cuda12") == []
    # A subdir picks the env's platform for it.
    assert drift_findings(LOCK, prefix, "cuda12", "linux-64") == []


@needs_lock
def test_drift_changed_missing_extra(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, *CUDA12)
    meta = prefix / "conda-meta"
    torch = next(meta.glob("pytorch-2*.json"))
    doc = json.loads(torch.read_text())
    doc["sha256"] = "0" * 64
    torch.write_text(json.dumps(doc))
    next(meta.glob("libzlib-*.json")).unlink()
    extra = {"name": "handmade", "version": "1.0", "build": "0", "sha256": "f" * 64}
    (meta / "handmade-1.0-0.json").write_text(json.dumps(extra))

    findings = drift_findings(LOCK, prefix, "cuda12", "linux-64-cuda12")
    by_pkg = {f.package: f.message for f in findings}
    assert set(by_pkg) == {"pytorch", "libzlib", "handmade"}, messages(findings)
    assert "differs from locked" in by_pkg["pytorch"]
    assert "is locked but not installed" in by_pkg["libzlib"]
    assert "is installed but not in the lock" in by_pkg["handmade"]
    assert all("pixi reinstall --locked -e cuda12" in f.fix for f in findings)


@needs_lock
def test_drift_without_a_sha256_compares_version_and_build(tmp_path: Path) -> None:
    # conda-meta records written by older installers have no sha256: version and build decide
    prefix = fake_prefix(tmp_path, *CUDA12)
    meta = prefix / "conda-meta"
    same = next(meta.glob("libzlib-*.json"))
    doc = json.loads(same.read_text())
    del doc["sha256"]
    same.write_text(json.dumps(doc))  # same version and build: no drift
    torch = next(meta.glob("pytorch-2*.json"))
    doc = json.loads(torch.read_text())
    del doc["sha256"]
    doc["build"] = "cpu_generic_py312_h0"  # another build of the same version
    torch.write_text(json.dumps(doc))
    numpy = next(meta.glob("numpy-*.json"))
    doc = json.loads(numpy.read_text())
    doc["sha256"] = ""
    doc["version"] = "0.0.1"  # another version, an empty hash
    numpy.write_text(json.dumps(doc))

    findings = drift_findings(LOCK, prefix, "cuda12", "linux-64-cuda12")
    by_pkg = {f.package: f.message for f in findings}
    assert set(by_pkg) == {"pytorch", "numpy"}, messages(findings)
    assert "cpu_generic_py312_h0" in by_pkg["pytorch"]
    assert "differs from locked" in by_pkg["numpy"]


@needs_lock
def test_drift_wrong_env_or_platform(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, *CUDA12)
    assert "is not in" in drift_findings(LOCK, prefix, "nope", "linux-64")[0].message
    assert (
        "has no osx-arm64 platform"
        in drift_findings(LOCK, prefix, "cuda12", "osx-arm64")[0].message
    )


def test_drift_skip_reasons(tmp_path: Path) -> None:
    assert "CONDA_PREFIX" in drift_skip_reason(tmp_path / "pixi.lock", None)
    assert "no conda-meta" in drift_skip_reason(tmp_path / "pixi.lock", tmp_path)
    (tmp_path / "conda-meta").mkdir()
    assert "no pixi.lock" in drift_skip_reason(tmp_path / "pixi.lock", tmp_path)


@needs_lock
def test_cmd_drift(rattler: Any, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    prefix = fake_prefix(tmp_path, "cuda13", "linux-64-cuda13")
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    monkeypatch.setenv("PIXI_ENVIRONMENT_NAME", "cuda13")
    if scan_lock(LOCK).platforms.get("linux-64-cuda13") != current_subdir():
        pytest.skip("the cuda13 env has no platform for this machine")
    assert run_cmd("--manifest", str(MANIFEST), "--env", "cuda13", "--drift") == 0
    next((prefix / "conda-meta").glob("libzlib-*.json")).unlink()
    assert run_cmd("--manifest", str(MANIFEST), "--env", "cuda13", "--drift") == 1
    assert "libzlib" in capsys.readouterr().out


def test_import_is_light() -> None:
    code = (
        "import sys, envcheck.lockaudit, envcheck.lockaudit.cmd\n"
        "from envcheck.lockaudit import drift_findings, drift_skip_reason\n"
        "bad = [m for m in ('torch', 'tensorflow', 'rattler', 'rich') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
