"""Real MNIST training on the CPU with each framework, run the way verify runs it.

Each run goes through envcheck's subprocess runner (a fresh interpreter, as in verify), so
torch and TensorFlow never share a process. Only accuracy is asserted; timings are reported
by bench/mnist.py, not tested.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import MNIST_DIR, REPO, needs_framework, needs_mnist

from envcheck.checks.registry import PROBES
from envcheck.runner import run_probe
from envcheck.training import BAR_QUICK, BATCH_SIZE, QUICK_IMAGES

TIMEOUT_S = 600


FRAMEWORKS = [
    pytest.param("torch", marks=needs_framework("torch")),
    pytest.param("tensorflow", marks=needs_framework("tensorflow")),
]


def test_imports_load_no_framework():
    code = (
        "import sys, envcheck.mnist, envcheck.mnist.fetch_cmd, envcheck.training, "
        "envcheck.training.torch_mnist, envcheck.training.tf_mnist\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@needs_mnist
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_quick_cpu_training_reaches_bar(framework: str):
    # mixed_precision: a second run under bf16 autocast, the path verify takes on GPUs.
    args = {
        "device": "cpu",
        "quick": True,
        "data_dir": str(MNIST_DIR),
        "download": False,
        "mixed_precision": True,
    }
    outcome = run_probe(PROBES[f"{framework}.train"].target, args, timeout=TIMEOUT_S)
    assert outcome.ok, f"{outcome.describe_failure()}\n{outcome.stderr_tail}"
    result = outcome.data
    json.dumps(result)  # the runner passes it on as JSON
    assert result["framework"] == framework and result["device"] == "cpu"
    assert result["quick"] is True and result["epochs"] == 1
    trained = QUICK_IMAGES[framework] // BATCH_SIZE * BATCH_SIZE  # full batches only
    assert result["train_images"] == trained and result["test_images"] == 10000
    assert result["test_accuracy"] >= BAR_QUICK, result
    mixed = result["mixed_precision"]
    assert mixed["dtype"] == "bfloat16" and mixed["test_accuracy"] >= BAR_QUICK, mixed
    for key in ("train_seconds", "first_step_seconds", "data_load_seconds", "images_per_second"):
        assert result[key] > 0
    curve = result["accuracy_curve"]
    assert len(curve) >= 2
    assert [p["images_seen"] for p in curve] == sorted({p["images_seen"] for p in curve})
    assert curve[-1]["images_seen"] == trained
    assert curve[-1]["test_accuracy"] == result["test_accuracy"]
    assert all(0.0 <= p["test_accuracy"] <= 1.0 for p in curve)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_asking_for_a_missing_gpu_is_a_clear_error(framework: str):
    # The data dir does not exist: on a GPU machine the run stops there instead of training.
    args = {"device": "cuda" if framework == "torch" else "gpu", "data_dir": "/nonexistent"}
    outcome = run_probe(PROBES[f"{framework}.train"].target, args, timeout=TIMEOUT_S)
    assert not outcome.ok and outcome.user_error, outcome.error
    if "sees no GPU" not in outcome.error:
        pytest.skip("a GPU is visible here, so there is no missing-GPU error to check")
    assert "--device cpu" in outcome.error and "\n" not in outcome.error


# ---------------------------------------------------------------- the bars, from recorded runs


def _train_outcome(accuracy: float, mixed: float | None, device: str = "cpu") -> dict:
    """torch.train's result in the shape the probe writes (envcheck.training.torch_mnist)."""
    data = {
        "framework": "torch", "device": device, "device_name": "CPU", "quick": True,
        "epochs": 1, "train_images": 19968, "test_images": 10000,
        "test_accuracy": accuracy, "train_seconds": 9.0, "first_step_seconds": 0.1,
        "data_load_seconds": 0.5, "images_per_second": 2200.0,
        "accuracy_curve": [{"images_seen": 19968, "test_accuracy": accuracy}],
        "mixed_precision": None if mixed is None else
        {"dtype": "bfloat16", "test_accuracy": mixed, "train_seconds": 9.5},
    }  # fmt: skip
    return {"target": "envcheck.training.torch_mnist:train", "ok": True, "data": data,
            "failure": None, "error": None, "user_error": False, "seconds": 10.0,
            "stderr_tail": "", "stderr": ""}  # fmt: skip


def _training_result(accuracy: float, mixed: float | None = None):
    from facts_library import cpu_torch, healthy_cuda12

    from envcheck.checks import REGISTRY, Options
    from envcheck.profiles import PROFILES
    from envcheck.runner import ProbeOutcome
    from envcheck.verify import verify

    facts = cpu_torch(healthy_cuda12()) | {"torch.train": _train_outcome(accuracy, mixed)}
    recorded = {name: ProbeOutcome.from_dict(d) for name, d in facts.items()}
    checks = [c for c in REGISTRY if c.check_id == "training.torch"]
    report, _ = verify(PROFILES["cpu"], ("torch",), False, Options(quick=True),
                       recorded=recorded, checks=checks)  # fmt: skip
    return report.checks[0]


@pytest.mark.parametrize(
    ("accuracy", "mixed", "status", "says"),
    [
        (BAR_QUICK + 0.005, BAR_QUICK, "pass", None),
        (BAR_QUICK, None, "pass", None),  # the bar itself passes
        (BAR_QUICK - 0.0001, None, "fail", "is below the bar 97.0%"),
        (0.11, None, "fail", "test accuracy 11.00% is below the bar"),
        (BAR_QUICK + 0.02, BAR_QUICK - 0.0099, "pass", None),  # within a point of the bar
        (BAR_QUICK + 0.02, BAR_QUICK - 0.02, "fail", "bfloat16 mixed precision reached only"),
    ],
)
def test_the_training_bars_decide_the_verdict(accuracy, mixed, status, says):
    c = _training_result(accuracy, mixed)
    assert c.status.value == status, (c.message, c.cause)
    if says:
        assert says in c.cause
