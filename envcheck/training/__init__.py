"""MNIST training runs that prove a framework really trains on a device.

Each framework module exposes ``train(args: dict) -> dict`` and imports its framework only
inside that function, so importing this package stays cheap and side-effect free. The
verify runner calls ``train`` in a subprocess of its own (``python -m envcheck.worker
envcheck.training.torch_mnist:train ARGS.json OUT.json``).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

from envcheck.errors import EnvcheckError
from envcheck.phases import phase

# Default accuracy bars (test set, 0..1) that verify compares test_accuracy with.
BAR_GPU_TORCH = 0.990
BAR_GPU_TF = 0.985
BAR_QUICK = 0.97

# Quick mode (the default on CPU): one pass over the first QUICK_IMAGES[framework] training
# images with a narrower model, as few as still clear BAR_QUICK by a clear margin (at least
# 0.75 points, over 3x the seed-to-seed spread) on seeds 0-3, on 2 CPU cores: torch at 20k
# images 97.75-97.95% (at 15k seed 0 gave 97.24%); TF at 30k 97.9-98.2% (at 20k only
# 97.23-97.46%, so TF keeps 30k). Torch at 30k gave 98.2-98.4% in ~7.5 s of training.
# The full run (default on GPU): 2 epochs, torch 99.2-99.25%, TF 99.2-99.3% (on the CPU).
QUICK_IMAGES = {"torch": 20000, "tensorflow": 30000}
QUICK_EPOCHS = 1
FULL_EPOCHS = 2
BATCH_SIZE = 256
# Peak one-cycle learning rate (Adam); the short quick run gains from a higher peak.
MAX_LR = 0.01
QUICK_MAX_LR = 0.02
# Evaluations along the run, for the accuracy curve (time to 99% / 98%).
CURVE_POINTS_FULL = 8
CURVE_POINTS_QUICK = 3


# bf16 runs natively from Ampere (compute capability 8.0) on; older GPUs train in fp16 with
# loss scaling. Decided by capability, not torch.cuda.is_bf16_supported(): recent PyTorch
# answers True on pre-Ampere GPUs too (emulated bf16), so the fp16 path would never run.
BF16_MIN_CAPABILITY = (8, 0)


def low_precision(on_gpu: bool, capability: tuple[int, int] | None) -> str:
    """The mixed-precision dtype name for a device: "bfloat16", or "float16" on pre-Ampere GPUs."""
    if on_gpu and capability is not None and tuple(capability) < BF16_MIN_CAPABILITY:
        return "float16"
    return "bfloat16"


def settings(args: dict, on_gpu: bool, framework: str | None = None) -> dict:
    """Normalise the optional args shared by both frameworks (an unnamed framework gets the
    longest quick run)."""
    # A key given as None (JSON null) means "default", like a missing key.
    quick = bool(_given(args, "quick", not on_gpu))
    epochs = int(args.get("epochs") or (QUICK_EPOCHS if quick else FULL_EPOCHS))
    batch_size = int(args.get("batch_size") or BATCH_SIZE)
    if epochs < 1 or not 1 <= batch_size <= 10000:
        raise EnvcheckError(
            f"bad training settings (epochs={epochs}, batch_size={batch_size}); use epochs "
            "of 1 or more and a batch size from 1 to 10000"
        )
    return {
        "quick": quick,
        "epochs": epochs,
        "seed": int(args.get("seed") or 0),
        "batch_size": batch_size,
        "data_dir": args.get("data_dir") or None,
        "download": bool(_given(args, "download", True)),
        "mixed_precision": bool(args.get("mixed_precision", False)),
        "train_limit": QUICK_IMAGES.get(framework or "", max(QUICK_IMAGES.values()))
        if quick
        else None,
        "max_lr": float(QUICK_MAX_LR if quick else MAX_LR),
        "curve_points": CURVE_POINTS_QUICK if quick else CURVE_POINTS_FULL,
        # evaluate along the run (the accuracy curve), or only at its end
        "curve": bool(_given(args, "curve", True)),
    }


def _given(args: dict, key: str, default):
    value = args.get(key)
    return default if value is None else value


def eval_steps(total_steps: int, points: int) -> list[int]:
    """Step counts (1-based) after which to evaluate: evenly spaced, always the last."""
    points = max(1, min(points, total_steps))
    return sorted({round(total_steps * (i + 1) / points) for i in range(points)})


def total_steps(cfg: dict, n: int) -> int:
    """Optimizer steps of a run: full batches only, so every step has one shape (cuDNN
    autotunes and TF traces once, in the first step)."""
    return n // cfg["batch_size"] * cfg["epochs"]


def timed_steps(
    cfg: dict,
    n: int,
    shuffle: Callable[[], Any],
    step: Callable[[Any, int], None],
    sync: Callable[[], None],
    evaluate: Callable[[], float],
    curve: bool,
) -> dict:
    """Run and time the training steps the same way for every framework.

    ``shuffle()`` gives an epoch's sample order, ``step(order, start)`` trains on one batch,
    ``sync()`` waits for the device (its work is asynchronous), ``evaluate()`` gives the test
    accuracy. The first step is timed apart; evaluations fall outside the clock.
    """
    batch = cfg["batch_size"]
    total = total_steps(cfg, n)
    checkpoints = set(eval_steps(total, cfg["curve_points"] if curve else 1))
    points, done, trained_s, first_s, eval_s = [], 0, 0.0, 0.0, 0.0
    for _epoch in range(cfg["epochs"]):
        order = shuffle()
        for start in range(0, n // batch * batch, batch):
            t0 = time.perf_counter()
            step(order, start)
            done += 1
            if done == 1 or done in checkpoints:
                sync()  # stop the clock only when the queued kernels have finished
            elapsed = time.perf_counter() - t0
            if done == 1:
                first_s = elapsed
            else:
                trained_s += elapsed
            if done in checkpoints:
                t0 = time.perf_counter()
                with phase("eval"):
                    accuracy = evaluate()
                eval_s += time.perf_counter() - t0
                points.append(
                    {
                        "images_seen": done * batch,
                        # both clocks: the first step (cuDNN autotuning, cuBLAS handles,
                        # tracing) can outweigh the rest of a short GPU run
                        "seconds": first_s + trained_s,
                        "seconds_after_first_step": trained_s,
                        "test_accuracy": accuracy,
                    }
                )
    return {
        "train_images": total * batch,
        "test_accuracy": points[-1]["test_accuracy"],
        "train_seconds": trained_s,
        "first_step_seconds": first_s,
        "eval_seconds": eval_s,
        "curve": points,
    }


def time_to(curve: list[dict], target: float) -> dict | None:
    """The first curve point at or above ``target`` test accuracy, timed with and without
    the first step (None: never reached)."""
    for point in curve:
        if point["test_accuracy"] >= target:
            return {
                "seconds": point["seconds"],
                "seconds_after_first_step": point.get("seconds_after_first_step"),
                "images_seen": point["images_seen"],
            }
    return None


# MNIST as read and verified once per process (a warm worker may train more than once)
_LOADED: dict[tuple, tuple] = {}


def load_data(cfg: dict):
    """Load MNIST (numpy uint8) and time it; the subset cut for quick mode happens here."""
    from envcheck.mnist import load_mnist

    start = time.perf_counter()
    key = (cfg["data_dir"], cfg["download"])
    with phase("data"):
        if key not in _LOADED:
            _LOADED[key] = load_mnist(cfg["data_dir"], download=cfg["download"])
        x_train, y_train, x_test, y_test = _LOADED[key]
    if cfg["train_limit"]:
        x_train, y_train = x_train[: cfg["train_limit"]], y_train[: cfg["train_limit"]]
    return (x_train, y_train, x_test, y_test), time.perf_counter() - start


def result(cfg: dict, run: dict, load_s: float, mixed: tuple[str, dict] | None, **identity) -> dict:
    """The record both frameworks return: identity (framework, device, ...) plus the figures.

    ``mixed`` is (dtype name, run) of the mixed-precision run, when there was one.
    """
    train_images = run["train_images"]
    return {
        **identity,
        "quick": cfg["quick"],
        "epochs": cfg["epochs"],
        "batch_size": cfg["batch_size"],
        "seed": cfg["seed"],
        "train_images": train_images,
        "test_accuracy": run["test_accuracy"],
        "train_seconds": run["train_seconds"],
        "first_step_seconds": run["first_step_seconds"],
        "data_load_seconds": load_s,
        "eval_seconds": run.get("eval_seconds"),
        # The first batch (cuDNN autotuning, graph tracing) is timed apart as first_step_seconds.
        "images_per_second": (train_images - cfg["batch_size"]) / max(run["train_seconds"], 1e-9),
        "mixed_precision": None
        if mixed is None
        else {
            "dtype": mixed[0],
            "test_accuracy": mixed[1]["test_accuracy"],
            "train_seconds": mixed[1]["train_seconds"],
        },
        "accuracy_curve": run["curve"],
        "time_to_99": time_to(run["curve"], 0.99),
    }


def cpu_name() -> str:
    """The CPU model for reports (platform.processor() is empty on most Linux systems)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"
