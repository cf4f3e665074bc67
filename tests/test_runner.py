"""Probes run isolated: a hang or a crash becomes a FAIL naming it, and the other checks run."""

from __future__ import annotations

import os
import signal

import pytest

from envcheck.checks import REGISTRY, Options
from envcheck.checks.registry import PROBES, Check, Context, ProbeSpec
from envcheck.model import Status, passed
from envcheck.profiles import PROFILES
from envcheck.runner import run_probe
from envcheck.verify import verify

TESTS_DIR = os.path.dirname(__file__)


def test_probe_returns_data_and_args():
    out = run_probe("probes_for_tests:fine", {"x": 1}, timeout=60, extra_path=[TESTS_DIR])
    assert out.ok and out.data == {"answer": 42, "echo": {"x": 1}}


def test_hang_is_killed_and_named():
    out = run_probe("probes_for_tests:hang", {}, timeout=3, extra_path=[TESTS_DIR])
    assert not out.ok and out.failure == "timeout"
    assert "timed out after 3 s" in out.describe_failure()


def test_abort_is_named_by_signal():
    out = run_probe("probes_for_tests:abort", {}, timeout=60, extra_path=[TESTS_DIR])
    assert not out.ok and out.failure == "signal"
    assert signal.SIGABRT.name in out.error


def test_exit_without_result_and_exception():
    early = run_probe("probes_for_tests:exit_early", {}, timeout=60, extra_path=[TESTS_DIR])
    assert early.failure == "exit" and "code 3" in early.error
    raised = run_probe("probes_for_tests:raises", {}, timeout=60, extra_path=[TESTS_DIR])
    assert raised.failure == "error" and raised.error == "ValueError: bad value in probe"


@pytest.fixture
def misbehaving_probes(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS_DIR)
    for name in ("hang", "abort", "fine"):
        monkeypatch.setitem(PROBES, f"test.{name}", ProbeSpec(f"probes_for_tests:{name}", 4))


def _probe_check(probe: str) -> Check:
    def fn(ctx: Context):
        return passed("kernels", probe, f"answer {ctx.data(f'test.{probe}')['answer']}")

    return Check("kernels", probe, fn)


def test_hanging_and_crashing_checks_fail_while_the_rest_run(misbehaving_probes):
    env_checks = [c for c in REGISTRY if c.category == "environment"]
    checks = env_checks + [_probe_check("hang"), _probe_check("abort"), _probe_check("fine")]
    report, _ = verify(PROFILES["cpu"], ("torch",), False, Options(), checks=checks)
    by_id = {c.check_id: c for c in report.checks}
    assert by_id["kernels.hang"].status is Status.FAIL
    assert "timed out after 4 s" in by_id["kernels.hang"].message
    assert by_id["kernels.abort"].status is Status.FAIL
    assert "SIGABRT" in by_id["kernels.abort"].message
    assert by_id["kernels.fine"].status is Status.PASS
    assert by_id["kernels.fine"].message == "answer 42"
    assert by_id["environment.python"].status is Status.PASS
    assert report.exit_code == 1
