"""Real runs of `envcheck verify` / `info` on this machine's CPU frameworks."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import (
    FRAMEWORKS,
    clean_env,
    closed_port_url,
    needs_cpu_torch,
    needs_gpu_less_cpu_builds,
    needs_tensorflow,
    run_envcheck,
)


def _checks(report: dict) -> dict[str, dict]:
    return {c["id"]: c for cat in report["categories"] for c in cat["checks"]}


@pytest.fixture(scope="module")
def cuda12_run(tmp_path_factory):
    """cuda12 profile on this GPU-less machine with CPU builds: must fail loudly."""
    out = tmp_path_factory.mktemp("cuda12")
    summary = out / "summary.md"
    proc = run_envcheck(
        "verify",
        "--json",
        str(out / "r.json"),
        "--junit",
        str(out / "r.xml"),
        "--save-facts",
        str(out / "facts.json"),
        env=clean_env(ENVCHECK_PROFILE="cuda12", GITHUB_STEP_SUMMARY=str(summary)),
    )
    return proc, out


# asserts what a GPU-less machine with CPU builds of both frameworks gives
@needs_gpu_less_cpu_builds
def test_cuda_profile_on_gpu_less_machine_fails_with_cause(cuda12_run):
    proc, out = cuda12_run
    assert proc.returncode == 1, proc.stderr
    report = json.loads((out / "r.json").read_text())
    checks = _checks(report)
    assert report["profile"] == "cuda12" and report["status"] == "fail"
    assert checks["build.torch"]["status"] == "fail"
    assert "CPU-only build" in checks["build.torch"]["cause"]
    # a pip venv: the fix is a pip command, not pixi's (fixes fit the install the user has)
    fix = checks["build.torch"]["fix"]
    assert "pip install --force-reinstall torch --index-url" in fix and "/whl/cu128" in fix
    assert "pixi" not in fix and "conda-forge" not in fix
    assert checks["devices.gpus"]["status"] == "fail"
    assert "no NVIDIA driver" in checks["devices.gpus"]["cause"]
    # nothing falls back to the CPU: kernels and training are failed, not run on the CPU
    assert report["frameworks"] == list(FRAMEWORKS)
    # (they did not run: their own state, grouped under the failures they follow from)
    for cid in (
        "kernels.torch",
        *(f"{cat}.{fw}" for cat in ("compile", "training") for fw in FRAMEWORKS),
    ):
        assert checks[cid]["status"] == "not_run" and "not run" in checks[cid]["message"]
        assert checks[cid]["follows"] and set(checks[cid]["follows"]) <= set(report["root_causes"])
    assert "devices.gpus" in report["root_causes"] and "build.torch" in report["root_causes"]
    assert report["counts"]["not_run"] >= 3
    assert "FAILED" in proc.stdout and "CPU-only build" in proc.stdout
    # the output ends with the root causes and the first fix to apply
    closing = proc.stdout[proc.stdout.rindex("FAILED: ") :].splitlines()[1:]
    assert closing[0] == "root causes (3), fix them in this order:", closing
    assert closing[1].startswith("  1. build.torch: PyTorch"), closing
    assert any(x.startswith("first fix (build.torch): install a CUDA") for x in closing), closing
    assert len(closing) <= 20, closing  # 3 roots, each with its follow-ons, and the fix


@needs_gpu_less_cpu_builds
def test_junit_and_step_summary_of_failed_run(cuda12_run):
    _, out = cuda12_run
    root = ET.fromstring((out / "r.xml").read_text())
    failures = root.findall(".//testcase/failure")
    assert int(root.get("failures")) == len(failures) > 0
    names = {
        f"{c.get('classname')}.{c.get('name')}"
        for c in root.iter("testcase")
        if c.find("failure") is not None
    }
    assert "envcheck.build.torch" in names
    summary = (out / "summary.md").read_text()
    assert "### envcheck: `cuda12` failed" in summary and "| ❌ | `build.torch` |" in summary


@needs_gpu_less_cpu_builds
def test_replay_of_saved_facts_gives_the_same_verdicts(cuda12_run, tmp_path):
    _, out = cuda12_run
    proc = run_envcheck(
        "verify",
        "--expect",
        "cuda12",
        "--replay",
        str(out / "facts.json"),
        "--json",
        str(tmp_path / "replayed.json"),
    )
    assert proc.returncode == 1
    live = {k: v["status"] for k, v in _checks(json.loads((out / "r.json").read_text())).items()}
    replayed = _checks(json.loads((tmp_path / "replayed.json").read_text()))
    assert {k: v["status"] for k, v in replayed.items()} == live


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "--expect", "cuda99"], "unknown profile 'cuda99'"),
        (["verify", "--framework", "jax"], "unknown framework 'jax'"),
        (["verify", "--min-accuracy", "7"], "--min-accuracy takes a fraction"),
        (["info", "--expect", "gpu"], "unknown profile 'gpu'"),
        (
            ["verify", "--data-dir", "/nonexistent/mnist"],
            "/nonexistent/mnist (from --data-dir) does",
        ),
        (["verify", "--data-dir", "tests"], "lacks train-images-idx3-ubyte.gz"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, message):
    proc = run_envcheck(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envcheck: error: ")
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_profile_from_environment_variable():
    proc = run_envcheck("verify", env=clean_env(ENVCHECK_PROFILE="cuda14"))
    assert proc.returncode == 2 and "from $ENVCHECK_PROFILE" in proc.stderr


def test_replay_of_a_corrupt_facts_file(tmp_path):
    bad = tmp_path / "facts.json"
    bad.write_text("{not json")
    proc = run_envcheck("verify", "--replay", str(bad))
    assert proc.returncode == 2 and "recorded facts" in proc.stderr and "is not JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


@needs_tensorflow
@needs_cpu_torch
def test_info_reports_frameworks_without_nvcc(tmp_path):
    proc = run_envcheck("info", "--json", str(tmp_path / "info.json"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "info.json").read_text())
    import torch

    assert info["torch.facts"]["version"] == torch.__version__
    assert "PyTorch" in proc.stdout
    if "tensorflow" in FRAMEWORKS:
        assert info["tensorflow.facts"]["build_info"]["is_cuda_build"] is False
        assert "TensorFlow" in proc.stdout
    else:
        assert "tensorflow.facts" not in info


def test_importing_envcheck_loads_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, envcheck, envcheck.cli, envcheck.verify, envcheck.checks, "
        "envcheck.report.terminal; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@needs_tensorflow
def test_cpu_profile_passes_end_to_end(mnist_dir, tmp_path):
    """The main job on this machine: its CPU frameworks, real MNIST training, quick bars."""
    proc = run_envcheck(
        "verify",
        "--expect",
        "cpu",
        "--data-dir",
        str(mnist_dir),
        "--no-download",
        "--json",
        str(tmp_path / "r.json"),
        "--junit",
        str(tmp_path / "r.xml"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    checks = _checks(report)
    assert report["status"] in ("pass", "warn") and report["counts"]["fail"] == 0
    for fw in FRAMEWORKS:
        train = checks[f"training.{fw}"]
        assert train["status"] == "pass", train
        assert train["figures"]["bar"] == 0.97
        assert 0.97 <= train["figures"]["test_accuracy"] <= 1.0
        assert train["figures"]["images_per_second"] > 0
        kernels = checks[f"kernels.{fw}"]
        assert kernels["status"] == "pass" and kernels["devices"][0]["figures"]["tflops_fp32"] > 0
    assert "PASSED" in proc.stdout


def test_offline_verify_without_mnist_fails_training_with_the_way_out(tmp_path):
    """No data dir, empty cache, every mirror unreachable: training FAILs in one line."""
    proc = run_envcheck(
        "verify",
        "--framework",
        "torch",
        "--json",
        str(tmp_path / "r.json"),
        env=clean_env(
            XDG_CACHE_HOME=str(tmp_path / "cache"),
            ENVCHECK_MNIST_MIRRORS=closed_port_url(),
        ),
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    train = _checks(json.loads((tmp_path / "r.json").read_text()))["training.torch"]
    assert train["status"] == "fail"
    assert train["message"].startswith("cannot download MNIST (")
    assert "--data-dir" in train["fix"] and "pixi run --locked fetch-mnist" in train["fix"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not any((tmp_path / "cache").rglob("*.gz"))


@pytest.mark.parametrize(
    ("message", "cause", "fix"),
    [
        ("a is gone; fetch it", "a is gone", "fetch it"),
        (
            "x failed (m1: 404; m2: bad sum); retry; or not",
            "x failed (m1: 404; m2: bad sum)",
            "retry; or not",
        ),
        ("no fix given", "no fix given", "see the message"),
    ],
)
def test_user_errors_split_into_cause_and_fix(message, cause, fix):
    from envcheck.errors import split_cause_fix

    assert split_cause_fix(message) == (cause, fix)
