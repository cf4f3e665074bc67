"""How per-device and per-check statuses roll up into a check, a category and the report."""

from __future__ import annotations

import pytest

from envcheck.model import Status, worst

P, W, S, F = Status.PASS, Status.WARN, Status.SKIP, Status.FAIL


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        ([P, S, S], P),  # --framework torch: the skipped TF checks do not make it a "skip"
        ([S, S], S),  # nothing ran
        ([P, W, S], W),
        ([W, F, P], F),
        ([S, F], F),
        ([], P),
    ],
)
def test_worst_ignores_skips_unless_nothing_ran(statuses, overall):
    assert worst(statuses) is overall


def _report(checks):
    from envcheck.model import Report

    return Report("cuda12", ["torch"], True, {"python": {"version": "3.12"}}, checks, "0", "", 1.0)


def _render(report) -> str:
    from rich.console import Console

    from envcheck.report import terminal

    console = Console(record=True, width=200, color_system=None)
    terminal.render(report, console)
    return console.export_text()


def test_terminal_report_shows_cause_and_fix_and_every_gpu():
    from envcheck.model import CheckResult, DeviceResult, failed, passed

    gpus = [DeviceResult("cuda:0", P, "ok 40 TFLOP/s"), DeviceResult("cuda:1", F, "matmul wrong")]
    text = _render(
        _report(
            [
                passed(
                    "training",
                    "torch",
                    "99.1% test accuracy",
                    devices=[DeviceResult("cuda:0", P, "99.1% test accuracy")],
                ),
                CheckResult(
                    "kernels",
                    "torch",
                    F,
                    "1 of 2 device(s) wrong",
                    "cuda:1 matmul wrong",
                    "reseat it",
                    devices=gpus,
                ),
                failed(
                    "build",
                    "torch",
                    "PyTorch is a CPU-only build",
                    "CPU build in cuda12",
                    "pixi install -e cuda12",
                ),
            ]
        )
    )
    assert "cause: CPU build in cuda12" in text and "fix:   pixi install -e cuda12" in text
    assert "cuda:0" in text and "cuda:1" in text and "matmul wrong" in text
    assert text.count("99.1% test accuracy") == 1  # a lone device repeating its check: one row
    assert "FAILED: 1 pass, 2 fail" in text
