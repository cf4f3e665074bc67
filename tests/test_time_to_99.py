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
