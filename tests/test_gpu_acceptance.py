"""The GPU acceptance run's parts that need no GPU, and the replay of its recorded fixtures.

bench/gpu_acceptance.sh itself runs on an NVIDIA machine; here: it stops at once, in one line,
where it cannot run; its summary and its fixture scrubber work on real-shaped data; and every
fixture in tests/data/facts/ replays to the verdicts the live run gave.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MNIST_DIR, REPO, clean_env, needs_cpu_torch, needs_no_gpu, run_envcheck

from envcheck.checks import REGISTRY, Options
from envcheck.profiles import PROFILES
from envcheck.runner import ProbeOutcome
from envcheck.verify import verify

sys.path.insert(0, str(REPO / "bench"))
import gpu_acceptance_report as paper  # noqa: E402

SCRIPT = REPO / "bench" / "gpu_acceptance.sh"
FIXTURES = sorted((REPO / "tests" / "data" / "facts").glob("*.json"))


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**(env or clean_env()), "PYTHON": sys.executable}  # the Python under test
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_no_gpu
def test_script_stops_in_one_line_without_a_gpu(tmp_path):
    proc = run_script(str(MNIST_DIR), str(tmp_path / "out"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "gpu_acceptance: no NVIDIA GPU: this script needs one (NVML: NVML Shared Library Not Found)"
    ]
    assert not (tmp_path / "out").exists()  # nothing half-written


def _driver_env(fake_nvml_dir: Path, hide_pynvml: list[str]) -> dict[str, str]:
    """An NVIDIA driver as NVML's C ABI shows it (the stand-in library), nvidia-ml-py hidden."""
    return clean_env(LD_LIBRARY_PATH=str(fake_nvml_dir), PYTHONPATH=hide_pynvml[0])


@needs_cpu_torch
def test_script_with_a_gpu_but_cpu_torch_stops_in_one_line(
    tmp_path, fake_nvml_dir, without_nvidia_ml_py
):
    if not MNIST_DIR.is_dir():
        pytest.skip("MNIST is not beside the checkout")
    env = _driver_env(fake_nvml_dir, without_nvidia_ml_py)
    proc = run_script(str(MNIST_DIR), str(tmp_path / "out"), env=env)
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu_acceptance: torch ") and line.endswith(
        "is a CPU-only build; this script needs a CUDA build"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t / "nowhere", "does not exist"),
        (lambda t: t, "lacks train-images-idx3-ubyte.gz"),
    ],
)
def test_script_checks_the_mnist_folder_first(
    tmp_path, fake_nvml_dir, without_nvidia_ml_py, make, message
):
    env = _driver_env(fake_nvml_dir, without_nvidia_ml_py)
    proc = run_script(str(make(tmp_path)), str(tmp_path / "out"), env=env)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu_acceptance: MNIST folder ") and message in line


def test_script_refuses_a_used_output_folder(tmp_path, fake_nvml_dir, without_nvidia_ml_py):
    if not MNIST_DIR.is_dir():
        pytest.skip("MNIST is not beside the checkout")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("keep me")
    env = _driver_env(fake_nvml_dir, without_nvidia_ml_py)
    proc = run_script(str(MNIST_DIR), str(tmp_path / "out"), env=env)
    assert proc.returncode == 1 and "exists and is not empty" in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old.txt"]


def test_envcheck_needs_no_platformdirs_when_the_data_dir_is_named(tmp_path):
    """The GPU machine's Python has no platformdirs: a named MNIST folder must do."""
    if not MNIST_DIR.is_dir():
        pytest.skip("MNIST is not beside the checkout")
    (tmp_path / "platformdirs.py").write_text('raise ImportError("platformdirs is absent")\n')
    code = (
        "import sys, envcheck.cli, envcheck.mnist as m\n"
        f"x, y, xt, yt = m.load_mnist({str(MNIST_DIR)!r}, download=False)\n"
        "print(len(x), len(xt))"
    )
    env = clean_env(PYTHONPATH=f"{tmp_path}:{REPO}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["60000", "10000"]


# ---- the summary


def _bench(seed: int, acc: float, to99: float | None, verify_s: float) -> dict:
    """One bench/mnist.py --json file, as it writes it."""
    curve = [{"images_seen": 15360, "seconds": to99 or 0.6, "test_accuracy": acc}]
    return {
        "runs": [
            {
                "framework": "torch",
                "args": {"seed": seed, "device": "cuda", "quick": False},
                "wall_seconds": 6.1,
                "ok": True,
                "time_to_99": None if to99 is None else {"seconds": to99, "images_seen": 15360},
                "time_to_98": {"seconds": 0.2, "images_seen": 7680},
                "result": {
                    "framework_version": "2.11.0+cu130",
                    "device_name": "NVIDIA H200",
                    "test_accuracy": acc,
                    "train_seconds": 0.7,
                    "first_step_seconds": 0.9,
                    "images_per_second": 171000.0,
                    "accuracy_curve": curve,
                },
                "verify_wall_seconds": verify_s,
                "verify_exit_code": 0,
                "verify_status": "pass",
            }
        ]
    }


def test_summary_lists_every_step_seed_span_and_targets():
    seeds = [
        paper.seed_figures(_bench(0, 0.9921, 0.41, 9.5)),
        paper.seed_figures(_bench(1, 0.9915, 0.62, 11.0)),
        paper.seed_figures(_bench(2, 0.9930, 0.45, 9.8)),
    ]
    steps = [
        {
            "name": "pass",
            "title": "b. verify --expect cuda13 --require-gpu (full)",
            "expect": "pass",
            "command": "-m envcheck verify --expect cuda13",
            "exit_code": 0,
            "seconds": 14.2,
            "ok": True,
            "note": "",
            "figures": {"status": "pass", "accuracy": "99.21%"},
        },
        {
            "name": "fault-oom",
            "title": "d. another process holds all but 256 MiB of GPU memory",
            "expect": "fail",
            "command": "-m envcheck verify --expect cuda13",
            "exit_code": 0,
            "seconds": 20.0,
            "ok": False,
            "note": "exit code 0, expected 1",
            "figures": {},
            "failed_checks": [
                {
                    "id": "kernels.torch",
                    "message": "probe torch.kernels ran out of GPU memory",
                    "cause": "the GPU ran out of memory: x | y",
                    "fix": "use a smaller batch",
                }
            ],
        },
    ]
    meta = {"gpu": "1x NVIDIA H200 (143771 MiB)", "driver": "580.159.04", "seconds": 212.0}
    text = paper.render_summary(meta, steps, seeds)
    assert text.startswith("# envcheck GPU acceptance run: FAILED\n")
    assert "| b. verify --expect cuda13 --require-gpu (full) | pass | 0 | ok | 14.2 |" in text
    assert "| fail | 0 | **NOT OK** | 20.0 | exit code 0, expected 1 |" in text
    assert "| 1 | 99.15% | 0.70 | 0.62 | 171,000 | 0.90 | 6.1 | 11.0 |" in text
    assert (
        "| min-max | 99.15%-99.30% | 0.70 | 0.41-0.62 | 171,000 | 0.90 | 6.1 | 9.5-11.0 |" in text
    )
    assert "- 99% within 0.5 s of training: missed" in text  # seed 1 took 0.62 s
    assert "- test accuracy >= 99.0%: met" in text
    assert "- cold `envcheck verify --framework torch` <= 10 s: missed" in text
    assert "Cause: the GPU ran out of memory: x \\| y. Fix: use a smaller batch" in text


def test_a_seed_that_never_reached_99_misses_the_target():
    seeds = [paper.seed_figures(_bench(0, 0.985, None, 8.0))]
    lines = paper.targets(seeds)
    assert "- test accuracy >= 99.0%: missed" in lines
    assert any(ln.startswith("- 99% within 0.5 s of training: missed (not reached") for ln in lines)


# ---- the fixtures: scrubbed, and replayed to the live verdicts


def test_scrub_replaces_host_user_and_gpu_uuids():
    secrets = {"/home/alice": "/home/user", "gpu-node-17.lab.example": "host"}
    facts = {
        "environment": {"data": {"python": {"executable": "/home/alice/venv/bin/python3"}}},
        "nvml": {"data": {"gpus": [{"uuid": "GPU-8d1c2f4e-5a6b-7c8d-9e0f-0123456789ab"}]}},
        "torch.facts": {
            "data": {"devices": [{"uuid": "8d1c2f4e-5a6b-7c8d-9e0f-0123456789ab"}]},
            "stderr": "x" * 10000 + " on gpu-node-17.lab.example",
        },
        "variables": {"CUDA_VISIBLE_DEVICES": "GPU-00000000-0000-0000-0000-000000000000"},
    }
    out = paper.scrub(facts, secrets)
    assert out["environment"]["data"]["python"]["executable"] == "/home/user/venv/bin/python3"
    nvml_uuid = out["nvml"]["data"]["gpus"][0]["uuid"]
    assert nvml_uuid == "GPU-00000001-1111-2222-3333-444444444444"
    assert out["torch.facts"]["data"]["devices"][0]["uuid"] == nvml_uuid[4:]  # the same GPU
    assert out["variables"]["CUDA_VISIBLE_DEVICES"].endswith("0000-000000000000")  # made up
    assert len(out["torch.facts"]["stderr"]) <= paper.STDERR_KEEP  # its end kept, scrubbed
    assert out["torch.facts"]["stderr"].endswith(" on host")
    assert paper.leaks(out, secrets) == [] and paper.leaks(facts, secrets) != []


def test_slug_names_the_gpu_model_only():
    assert paper.slug("NVIDIA H200") == "h200"
    assert paper.slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"


NO_FIXTURES = pytest.param(
    None,
    marks=pytest.mark.skip(
        reason="no GPU facts recorded in tests/data/facts/ yet: run bench/gpu_acceptance.sh "
        "on a GPU machine and commit its fixtures"
    ),
    id="none-recorded",
)


@pytest.mark.parametrize("path", FIXTURES or [NO_FIXTURES], ids=[p.stem for p in FIXTURES] or None)
def test_recorded_fixture_replays_to_the_live_verdicts(path):
    """Facts recorded on a real machine give, replayed, exactly what the live run decided."""
    fixture = json.loads(path.read_text(encoding="utf-8"))
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in fixture["facts"].items()}
    live = fixture["verdicts"]
    checks = [c for c in REGISTRY if c.check_id in live]
    assert {c.check_id for c in checks} == set(live), "a recorded check no longer exists"
    report, _ = verify(
        PROFILES[fixture["profile"]],
        tuple(fixture["frameworks"]),
        fixture["require_gpu"],
        Options(),
        recorded=recorded,
        checks=checks,
    )
    replayed = {c.check_id: {"status": c.status.value, "cause": c.cause} for c in report.checks}
    assert replayed == live
    assert report.exit_code == fixture["exit_code"]


def test_fixture_command_writes_a_replayable_fixture(tmp_path):
    """A real run on this machine through the fixture command, then replayed like the others."""
    proc = run_envcheck(
        "verify",
        "--expect",
        "cuda12",
        "--framework",
        "torch",
        "--no-training",
        "--json",
        str(tmp_path / "r.json"),
        "--save-facts",
        str(tmp_path / "facts.json"),
    )
    assert proc.returncode in (0, 1), proc.stderr
    out = tmp_path / "fixture.json"
    made = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "gpu_acceptance_report.py"),
            "fixture",
            "here",
            str(tmp_path / "facts.json"),
            str(tmp_path / "r.json"),
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    test_recorded_fixture_replays_to_the_live_verdicts(out)
    assert paper.leaks(json.loads(out.read_text()), paper.host_secrets()) == []
