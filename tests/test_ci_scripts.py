"""The CI helper scripts read the real pixi.lock the way the workflows rely on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".ci"))

import gha_matrix  # noqa: E402
import gpu_preflight  # noqa: E402

from envcheck.diagnose import MIN_DRIVER  # noqa: E402


@pytest.fixture(scope="module")
def lock() -> dict:
    return gha_matrix.load_lock(REPO / "pixi.lock")


def test_every_locked_env_x_platform_gets_one_install_leg(lock):
    envs, tests = gha_matrix.build(lock, {"default"}, ["default", "cpu"], {"doctor": "doctor"})
    legs = {(leg["env"], leg["platform"]) for leg in envs}
    assert len(legs) == len(envs)
    expected = {
        (env, platform)
        for env, data in lock["environments"].items()
        if env != "default"
        for platform in data["packages"]
    }
    assert legs == expected
    for leg in envs:
        want = "doctor" if leg["env"] == "doctor" else ("info" if leg["cuda"] else "verify")
        assert leg["check"] == want, leg
        assert leg["runner"] == gha_matrix.RUNNERS[leg["subdir"]]
    # One test leg per CPU subdir of the default env; never a CUDA platform.
    assert sorted(t["subdir"] for t in tests) == sorted(
        {
            gha_matrix.lock_platforms(lock).get(p, {"subdir": p})["subdir"]
            for p in lock_default(lock)
        }
    )


def lock_default(lock: dict) -> list[str]:
    platforms = gha_matrix.lock_platforms(lock)
    return [
        p
        for p in lock["environments"]["default"]["packages"]
        if not platforms.get(p, {"cuda": ""})["cuda"]
    ]


def test_the_preflight_reads_each_env_s_cuda_from_the_lock(lock):
    platforms = gha_matrix.lock_platforms(lock)
    for env, data in lock["environments"].items():
        for name in data["packages"]:
            info = platforms.get(name, {"subdir": name, "cuda": ""})
            if info["cuda"]:
                assert gpu_preflight.env_cuda(lock, env, info["subdir"]) == info["cuda"]
    assert gpu_preflight.env_cuda(lock, "cpu", "linux-64") is None
    assert gpu_preflight.env_cuda(lock, "cuda13", "linux-64") == "13.0"


def test_the_preflight_flags_gpus_outside_a_cuda_line():
    nvml = {
        "gpus": [
            {"index": 0, "name": "Tesla V100", "compute_capability": "7.0"},
            {"index": 1, "name": "B200", "compute_capability": "10.0"},
            {"index": 2, "name": "H100", "compute_capability": "9.0"},
        ]
    }
    assert [w.split()[1] for w in gpu_preflight.arch_warnings(nvml, 13)] == ["0"]
    assert [w.split()[1] for w in gpu_preflight.arch_warnings(nvml, 11)] == ["1"]
    assert gpu_preflight.arch_warnings(nvml, 12) == []


def test_the_preflight_fails_in_one_line_without_a_usable_driver():
    # On this machine: either no driver (one ::error:: line) or a real driver, whose verdict
    # must name the driver the env needs when it fails.
    proc = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "gpu_preflight.py"), "--env", "cuda13"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("::error::")]
    if proc.returncode == 0:
        assert not errors and re.search(r"driver \S+ \(CUDA", proc.stdout)
    else:
        assert proc.returncode == 1 and len(errors) == 1, proc.stdout + proc.stderr
        assert MIN_DRIVER[13] in errors[0]
        assert "Traceback" not in proc.stderr


WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PIXI_CMD = re.compile(r"\bpixi\s+(run|install|shell|shell-hook)\b[^\n]*")


def test_every_pixi_install_or_run_in_ci_is_locked():
    # A plain `pixi run`/`pixi install` re-solves and rewrites pixi.lock when pixi thinks it
    # out of date: CI must test the committed lock or fail, never a fresh solve.
    seen = 0
    for wf in WORKFLOWS:
        for line in wf.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("#") or "- name:" in line:
                continue
            for match in PIXI_CMD.finditer(line):
                seen += 1
                assert "--locked" in match.group(0), f"{wf.name}: {line.strip()}"
    assert seen >= 5


def test_ci_asks_real_pixi_whether_the_lock_satisfies_the_manifest():
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    job = ci["jobs"]["pixi-lock"]
    steps = " ".join(str(step.get("run", "")) for step in job["steps"])
    assert "pixi lock --check" in steps
    setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith("prefix-dev/setup-pixi@")]
    assert setup and re.fullmatch(r"prefix-dev/setup-pixi@[0-9a-f]{40}", setup[0]["uses"])
    assert setup[0]["with"]["pixi-version"] == "${{ env.PIXI_VERSION }}"
    assert "pixi-lock" in ci["jobs"]["ci-ok"]["needs"]
