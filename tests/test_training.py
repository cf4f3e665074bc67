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
