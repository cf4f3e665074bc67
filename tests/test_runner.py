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


def test_complete_result_wins_over_an_abort_at_exit():
    # issue 24 item 2: the probe wrote its whole result, then the process died at exit
    out = run_probe("probes_for_tests:result_then_abort", {}, timeout=60, extra_path=[TESTS_DIR])
    assert out.ok and out.data == {"answer": 42}, out
    assert out.notes == ["the probe process ended with signal SIGABRT after writing its result"]
    assert out.to_dict()["notes"] == out.notes  # kept in the facts --save-facts writes


@pytest.fixture
def shared_worker_probes(monkeypatch):
    # one framework ("testfw") whose probes share a warm worker, facts first as for torch
    monkeypatch.setenv("PYTHONPATH", TESTS_DIR)
    specs = {"facts": "pid", "crash": "abort", "hang": "hang", "after": "pid", "raise": "raises"}
    for name, func in specs.items():
        monkeypatch.setitem(
            PROBES, f"testfw.{name}", ProbeSpec(f"probes_for_tests:{func}", 6, "testfw")
        )


def _shared_check(probe: str) -> Check:
    def fn(ctx: Context):
        return passed("kernels", probe, f"pid {ctx.data(f'testfw.{probe}')['pid']}")

    return Check("kernels", probe, fn)


def _run_shared(probes: list[str]):
    report, ctx = verify(PROFILES["cpu"], (), False, Options(),
                         checks=[_shared_check(p) for p in probes])  # fmt: skip
    return {c.name: c for c in report.checks}, ctx, report


@pytest.mark.parametrize("bad", ["crash", "hang"])
def test_a_crash_or_hang_in_the_shared_worker_fails_that_check_only(shared_worker_probes, bad):
    by_name, ctx, report = _run_shared(["facts", "raise", bad, "after"])
    assert ctx.facts["testfw.facts"].isolation == "shared"
    # the call raised: the worker lives on and serves the next call
    assert by_name["raise"].status is Status.FAIL
    assert ctx.facts["testfw.raise"].failure == "error"
    first_pid = ctx.facts["testfw.facts"].data["pid"]
    failed_outcome = ctx.facts[f"testfw.{bad}"]
    assert by_name[bad].status is Status.FAIL
    if bad == "crash":  # the worker died during this call
        assert failed_outcome.failure == "signal"
        assert "the shared testfw worker was killed by SIGABRT" in by_name[bad].message
    else:  # it hung: killed at the probe's timeout
        assert failed_outcome.failure == "timeout"
        assert "timed out after 6 s" in by_name[bad].message
    # the check after it still gets a verdict, from a fresh worker, and the report says so
    assert by_name["after"].status is Status.PASS
    after = ctx.facts["testfw.after"]
    assert after.data["pid"] != first_pid
    assert after.notes and f"during testfw.{bad}" in after.notes[0]
    assert any(f"during testfw.{bad}" in n and "fresh worker" in n for n in report.notes)
    assert report.to_dict()["notes"] == report.notes


def test_shared_probes_run_in_one_worker(shared_worker_probes):
    by_name, ctx, report = _run_shared(["facts", "after"])
    assert by_name["after"].status is Status.PASS
    assert ctx.facts["testfw.after"].data["pid"] == ctx.facts["testfw.facts"].data["pid"]
    assert report.notes == [] and report.probes["testfw.after"]["isolation"] == "shared"
