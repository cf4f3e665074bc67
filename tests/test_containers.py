"""containers/: the recipes tools/containers.py writes from pixi.lock, and the entrypoint's
behaviour in a read-only home (Apptainer's default, `docker run --read-only`).

The images themselves cannot be built here (no container runtime); the workflow
.github/workflows/containers.yml builds them and runs envcheck inside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import containers  # noqa: E402

LOCK = REPO / "pixi.lock"
# A folder nobody can write in, root included (sysfs refuses new files): a read-only home.
READ_ONLY = Path("/sys/kernel")


@pytest.fixture(scope="module")
def legs() -> list[dict[str, str]]:
    return containers.legs(containers.load_lock(LOCK))


def stages(text: str) -> list[list[str]]:
    """Dockerfile instructions (continuation lines joined), split at each FROM."""
    joined = text.replace("\\\n", " ")
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    out: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_containers_are_regenerated_identically(tmp_path):
    containers.render_all(LOCK, tmp_path)
    problems = containers.compare_trees(tmp_path, REPO)
    assert problems == [], "run `python tools/containers.py`: " + "; ".join(problems)


def test_check_mode_fails_on_a_stale_recipe(tmp_path):
    root = tmp_path / "repo"
    (root / "containers").mkdir(parents=True)
    shutil.copy(LOCK, root / "pixi.lock")
    containers.render_all(root / "pixi.lock", root)
    assert containers.main(["--lock", str(root / "pixi.lock"), "--check"]) == 0
    (root / "containers" / "cpu" / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    (root / "containers" / "old").mkdir()
    (root / "containers" / "old" / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    assert containers.main(["--lock", str(root / "pixi.lock"), "--check"]) == 1


def test_one_image_per_environment_and_linux_platform_of_the_lock(legs):
    lock = containers.load_lock(LOCK)
    platforms = containers.lock_platforms(lock)
    want = {
        (env, name)
        for env, data in lock["environments"].items()
        if env != "default"
        for name in data["packages"]
        if platforms[name]["subdir"].startswith("linux-")
    }
    assert {(leg["env"], leg["platform"]) for leg in legs} == want
    assert json.loads((REPO / "containers" / "matrix.json").read_text(encoding="utf-8")) == legs
    for env in {leg["env"] for leg in legs}:
        assert (REPO / "containers" / env / "Dockerfile").is_file()
        assert (REPO / "containers" / env / f"{env}.def").is_file()


def test_dockerfiles_follow_the_multi_stage_recipe(legs):
    sha = containers.lock_sha256(LOCK)
    for env in sorted({leg["env"] for leg in legs}):
        cuda = {leg["cuda"] for leg in legs if leg["env"] == env}.pop()
        text = (REPO / "containers" / env / "Dockerfile").read_text(encoding="utf-8")
        build, final = stages(text)
        # Both bases pinned by digest.
        for stage in (build, final):
            assert "@sha256:" in stage[0] and len(stage[0].split("@sha256:")[1].split()[0]) == 64
        assert build[0].startswith("FROM ghcr.io/prefix-dev/pixi:")
        assert any(f"pixi install --locked -e {env}" in i for i in build)
        assert any(f"pixi shell-hook -e {env} -s bash" in i for i in build)
        assert any(f'echo "{sha}  pixi.lock" | sha256sum -c -' in i for i in build)
        # CONDA_OVERRIDE_CUDA: the lock's __cuda, in the build stage only.
        overrides = [i for i in build if "CONDA_OVERRIDE_CUDA" in i]
        assert overrides == ([f'ENV CONDA_OVERRIDE_CUDA="{cuda}"'] if cuda else [])
        assert not any("CONDA_OVERRIDE_CUDA" in i for i in final)
        # The final stage holds the env at the same prefix, runs as a non-root user.
        prefix = f"/opt/envcheck/.pixi/envs/{env}"
        assert f"COPY --from=build {prefix} {prefix}" in final
        users = [i.split()[1] for i in final if i.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root")
        labels = " ".join(i for i in final if i.startswith("LABEL "))
        assert f'org.envcheck.environment="{env}"' in labels
        assert f'org.envcheck.pixi-lock.sha256="{sha}"' in labels
        assert 'ENTRYPOINT ["/opt/envcheck/entrypoint.sh"]' in final
        # envcheck beside pixi.lock, that folder on sys.path (the layout tested below)
        assert "COPY --from=build /opt/envcheck/envcheck /opt/envcheck/envcheck" in final
        assert any("'envcheck.pth').write_text('/opt/envcheck\\n')" in i for i in build)
        assert not any("pixi " in i for i in final if i.startswith("RUN"))


def test_apptainer_definitions_test_what_the_env_can_prove(legs):
    sha = containers.lock_sha256(LOCK)
    for env in sorted({leg["env"] for leg in legs}):
        leg = next(leg for leg in legs if leg["env"] == env)
        text = (REPO / "containers" / env / f"{env}.def").read_text(encoding="utf-8")
        sections = text.split("\n%")
        test = next(s for s in sections if s.startswith("test"))
        runscript = next(s for s in sections if s.startswith("runscript"))
        assert 'exec /opt/envcheck/entrypoint.sh "$@"' in runscript
        assert f"org.envcheck.pixi-lock.sha256 {sha}" in text
        assert text.count("Bootstrap: docker") == 2 and "%files from build" in text
        if leg["check"] == "verify":
            assert "envcheck verify\n" in test and "info" not in test
        elif leg["check"] == "info":
            assert "envcheck verify --require-gpu" in test and "envcheck info" in test
            assert f"export CONDA_OVERRIDE_CUDA={leg['cuda']}" in text.split("Stage: final")[0]
            assert "CONDA_OVERRIDE_CUDA" not in text.split("Stage: final")[1]
        else:
            assert "envcheck doctor" in test


def test_apptainer_definitions_parse_with_spython(legs):
    parsers = pytest.importorskip("spython.main.parse.parsers")
    for env in sorted({leg["env"] for leg in legs}):
        recipe = parsers.SingularityParser(str(REPO / "containers" / env / f"{env}.def")).recipe
        assert set(recipe) == {"build", "final"}
        assert recipe["build"].fromHeader == containers.PIXI_IMAGE
        assert recipe["final"].fromHeader == containers.BASE_IMAGE
        assert "entrypoint.sh" in recipe["final"].cmd


# -- the entrypoint, run for real with a stand-in for the build's shell-hook -----------------
def run_entrypoint(tmp_path: Path, env: dict[str, str], *cmd: str):
    image = tmp_path / "opt"
    image.mkdir(exist_ok=True)
    shutil.copy(REPO / "containers" / "entrypoint.sh", image / "entrypoint.sh")
    (image / "activate.sh").write_text("export ENVCHECK_ACTIVATED=yes\n", encoding="utf-8")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        ["bash", str(image / "entrypoint.sh"), *cmd],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


SHOW = (
    "sh",
    "-c",
    'echo "$ENVCHECK_ACTIVATED|$XDG_CACHE_HOME|$TRITON_CACHE_DIR|$MPLCONFIGDIR|$CUDA_CACHE_PATH'
    '|$TORCHINDUCTOR_CACHE_DIR"',
)


@pytest.mark.skipif(
    sys.platform != "linux" or not READ_ONLY.is_dir() or shutil.which("bash") is None,
    reason="needs Linux sysfs (a folder no one can write in) and bash",
)
def test_entrypoint_moves_caches_out_of_a_read_only_home(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = run_entrypoint(tmp_path, {"HOME": str(READ_ONLY), "TMPDIR": str(scratch)}, *SHOW)
    assert done.returncode == 0, done.stderr
    activated, xdg, triton, mpl, nv, inductor = done.stdout.strip().split("|")
    base = scratch / f"envcheck-{os.getuid()}"
    assert activated == "yes"
    assert xdg == str(base / "cache") and (base / "cache").is_dir()
    for cache in (triton, mpl, nv, inductor):
        assert cache.startswith(str(base))


@pytest.mark.skipif(
    sys.platform == "win32" or shutil.which("bash") is None, reason="needs a POSIX bash"
)
def test_entrypoint_leaves_a_writable_home_and_set_caches_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    done = run_entrypoint(tmp_path, {"HOME": str(home)}, *SHOW)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "yes|||||"
    done = run_entrypoint(
        tmp_path, {"HOME": "/nonexistent", "XDG_CACHE_HOME": str(home), "TMPDIR": str(home)}, *SHOW
    )
    assert done.stdout.strip() == f"yes|{home}||||"


@pytest.mark.skipif(
    sys.platform != "linux" or not READ_ONLY.is_dir() or shutil.which("bash") is None,
    reason="needs Linux sysfs (a folder no one can write in) and bash",
)
def test_entrypoint_passes_over_a_read_only_tmpdir(tmp_path):
    # A TMPDIR from the host that is read-only in the container: the next writable folder
    # (/tmp here), whose envcheck-<uid> folder the test removes again if it made it
    made = Path("/tmp", f"envcheck-{os.getuid()}")
    existed = made.exists()
    try:
        done = run_entrypoint(tmp_path, {"HOME": str(READ_ONLY), "TMPDIR": str(READ_ONLY)}, *SHOW)
        assert done.returncode == 0, done.stderr
        xdg = done.stdout.strip().split("|")[1]
        assert xdg and not xdg.startswith(str(READ_ONLY))
    finally:
        if not existed:
            shutil.rmtree(made, ignore_errors=True)


def test_entrypoint_runs_envcheck_info_without_a_command(tmp_path):
    if sys.platform == "win32" or shutil.which("bash") is None:
        pytest.skip("needs a POSIX bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "envcheck"
    fake.write_text('#!/bin/sh\necho "envcheck $*"\n', encoding="utf-8")
    fake.chmod(0o755)
    done = run_entrypoint(
        tmp_path, {"HOME": str(tmp_path), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "envcheck info"


def test_envcheck_in_the_image_layout_finds_the_image_lock(tmp_path):
    # The final stage's layout: /opt/envcheck/{pixi.toml,pixi.lock,envcheck/}, that folder on
    # sys.path (the .pth file), the user's home as the working folder.
    opt = tmp_path / "opt" / "envcheck"
    opt.mkdir(parents=True)
    for name in ("pixi.toml", "pixi.lock"):
        shutil.copy(REPO / name, opt / name)
    shutil.copytree(
        REPO / "envcheck", opt / "envcheck", ignore=shutil.ignore_patterns("__pycache__")
    )
    home = tmp_path / "home"
    home.mkdir()
    code = "from envcheck.doctor.workspace import find_lock; print(find_lock(None))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(opt)},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(opt / "pixi.lock")
