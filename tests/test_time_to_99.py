"""Time to 99% with and without the first step (cuDNN autotuning, cuBLAS handle creation).

On a GPU the first step can take longer than the rest of a 2-epoch MNIST run, so the curve
carries both clocks and the training facts give time_to_99 both ways.
"""

from __future__ import annotations

import time

import pytest

from envcheck.training import result, settings, time_to, timed_steps


def test_curve_and_facts_give_time_to_99_with_and_without_the_first_step():
    cfg = {**settings({"quick": False, "epochs": 1}, on_gpu=True), "curve_points": 4}
    n = cfg["batch_size"] * 8
    steps = []

    def step(order, start):
        steps.append(start)
        time.sleep(0.2 if len(steps) == 1 else 0.01)  # the first step autotunes

    accuracies = iter([0.97, 0.991, 0.992, 0.993])
    run = timed_steps(cfg, n, lambda: None, step, lambda: None, lambda: next(accuracies), True)
    first = run["first_step_seconds"]
    assert first >= 0.2
    for point in run["curve"]:
        assert point["seconds"] - point["seconds_after_first_step"] == pytest.approx(first)
    facts = result(cfg, run, 0.1, None, framework="torch", device="cuda")
    hit = facts["time_to_99"]
    assert hit["images_seen"] == 4 * cfg["batch_size"]  # the second of four checkpoints
    assert hit["seconds"] == run["curve"][1]["seconds"]
    assert hit["seconds_after_first_step"] == pytest.approx(run["curve"][1]["seconds"] - first)
    assert hit["seconds_after_first_step"] < 0.2 < hit["seconds"]
    assert time_to(run["curve"], 0.999) is None


def test_training_check_reports_both_figures():
    from facts_library import healthy_cuda12
    from test_diagnose import replay

    cfg = {**settings({"quick": False, "epochs": 1}, on_gpu=True), "curve_points": 2}
    curve = [
        {
            "images_seen": 256,
            "seconds": 0.93,
            "seconds_after_first_step": 0.03,
            "test_accuracy": 0.95,
        },
        {
            "images_seen": 512,
            "seconds": 1.31,
            "seconds_after_first_step": 0.41,
            "test_accuracy": 0.991,
        },
    ]
    run = {"train_images": 512, "test_accuracy": 0.991, "train_seconds": 0.41,
           "first_step_seconds": 0.9, "curve": curve}  # fmt: skip
    data = result(cfg, run, 0.2, None, framework="torch", device="cuda:0", device_name="H100")
    facts = healthy_cuda12()
    facts["torch.train"] = {**facts["torch.facts"], "data": data}
    checks, _ = replay(facts, frameworks=("torch",), only={"training.torch"})
    figures = checks["training.torch"].figures
    assert figures["time_to_99_seconds"] == 1.31
    assert figures["time_to_99_after_first_step_seconds"] == 0.41
