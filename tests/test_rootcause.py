"""Failure output that leads: follow-on failures grouped under their root cause, in the terminal
(at 80 and 40 columns), the JSON report, JUnit and the step summary."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET

import jsonschema
from facts_library import healthy_cuda12
from rich.console import Console

from envcheck.checks import REGISTRY, Options
from envcheck.model import CheckResult, Status, failed, passed, skipped
from envcheck.profiles import PROFILES
from envcheck.report import junit, summary, terminal
from envcheck.report.json_report import SCHEMA_PATH
from envcheck.rootcause import group_follow_ons, needs_of, root_causes
from envcheck.runner import ProbeOutcome
from envcheck.verify import verify

# the checks that compute on the GPU, which cannot run without one
GPU_WORK = [c.check_id for c in REGISTRY if c.category in ("kernels", "compile", "distributed",
                                                             "training")]  # fmt: skip


def no_driver_cuda12():
    """A cuda12 env (CUDA builds of torch and TF) on a machine with no NVIDIA driver."""
    facts = healthy_cuda12()
    facts["nvml"]["data"] = {
        "available": False,
        "reason": "no_driver",
        "error": "NVML Shared Library Not Found",
    }
    facts["torch.facts"]["data"].update(
        cuda_available=False,
        device_count=0,
        devices=[],
        init_error="RuntimeError: Found no NVIDIA driver on your system.",
    )
    facts["tensorflow.facts"]["data"].update(devices=[])
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    checks = [c for c in REGISTRY if c.check_id != "environment.lock_drift"]
    report, _ = verify(
        PROFILES["cuda12"], ("torch", "tensorflow"), False, Options(), recorded=recorded,
        checks=checks,
    )  # fmt: skip
    return report


def rendered(report, width: int) -> str:
    out = io.StringIO()
    terminal.render(report, Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_no_driver_reads_as_one_cause_with_one_fix():
    report = no_driver_cuda12()
    assert report.root_causes == ["devices.gpus"]
    by_id = {c.check_id: c for c in report.checks}
    not_run = [c.check_id for c in report.checks if c.status is Status.NOT_RUN]
    # every check that computes on the GPU (health reads NVML: it is left out without a GPU)
    assert sorted(not_run) == sorted(GPU_WORK), not_run
    # PyTorch and TensorFlow did look for a GPU and failed: still FAIL, grouped under the root
    for cid in ("devices.torch", "devices.tensorflow"):
        assert by_id[cid].status is Status.FAIL and by_id[cid].follows == ["devices.gpus"]
    counts = report.counts()
    assert counts["not_run"] == len(GPU_WORK) and counts["fail"] == 3
    assert report.exit_code == 1
    [root] = root_causes(report.checks)
    assert "no NVIDIA driver answers" in root.cause and "nvidia-smi" in root.fix
    assert len(root.follow_ons) == len(GPU_WORK) + 2  # and devices.torch, devices.tensorflow


def test_terminal_ends_with_the_root_cause_and_first_fix_at_80_columns():
    report = no_driver_cuda12()
    text = rendered(report, 80)
    lines = text.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 80
    tail = text[text.rindex("FAILED: ") :]  # the closing lines
    assert len(tail.splitlines()) <= 12
    assert "root cause: devices.gpus: no NVIDIA driver answers" in tail
    assert "first fix (devices.gpus): run on a machine with an NVIDIA GPU" in tail
    # follow-ons name their root instead of repeating a cause and a fix of their own
    assert text.count("fix:") == 1
    assert text.count("follows from devices.gpus") == len(GPU_WORK) + 2
    assert f"3 fail, {len(GPU_WORK)} not run" in text
    # the old layout needed 103 lines at 80 columns for a run like this
    # at most two lines a check (status and result, then what it follows from) and the closing
    assert len(lines) <= 2 * len(report.checks) + 12, len(lines)


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z0-9_.]{4,}", text))


def test_nothing_is_lost_and_no_word_is_split_at_40_columns():
    report = no_driver_cuda12()
    narrow, wide = rendered(report, 40), rendered(report, 200)
    assert max(len(line) for line in narrow.splitlines()) <= 40
    for c in report.checks:
        assert c.check_id in narrow
    # every word the wide layout prints is printed whole in the narrow one too
    missing = words(wide) - words(narrow) - {"status", "check", "result"}  # table headers
    assert not missing, sorted(missing)[:10]


def test_json_names_the_root_causes_and_follow_ons():
    report = no_driver_cuda12()
    d = report.to_dict()
    jsonschema.validate(d, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    assert d["root_causes"] == ["devices.gpus"]
    assert d["counts"]["not_run"] == len(GPU_WORK)
    checks = {c["id"]: c for cat in d["categories"] for c in cat["checks"]}
    assert checks["training.torch"]["status"] == "not_run"
    assert checks["training.torch"]["follows"] == ["devices.gpus"]
    assert checks["devices.gpus"]["follows"] == []


def test_step_summary_and_junit_lead_with_the_root_cause():
    report = no_driver_cuda12()
    md = summary.to_markdown(report)
    assert "**root cause: devices.gpus: no NVIDIA driver answers" in md
    assert "- first fix (devices.gpus):" in md
    xml = ET.fromstring(junit.to_junit(report))
    skipped_cases = xml.findall(".//testcase/skipped")
    assert any("follows from devices.gpus" in s.get("message", "") for s in skipped_cases)


def test_a_failure_without_a_failed_need_stays_a_root_cause():
    """Fail closed: a "not run" whose needs passed is not hidden as a follow-on."""
    results = [
        passed("devices", "torch", "1 GPU"),
        failed("kernels", "torch", "not run: GPU expected but none usable", "c", "f"),
    ]
    group_follow_ons(results)
    assert results[1].status is Status.FAIL and results[1].follows == []
    assert [r.check_id for r in root_causes(results)] == ["kernels.torch"]


def test_follow_ons_inherit_the_root_of_their_need():
    results = [
        failed("imports", "torch", "torch is not installed", "c", "f"),
        skipped("build", "torch", "not run: probe torch.facts failed (see imports.torch)"),
        skipped("devices", "torch", "not run: probe torch.facts failed (see imports.torch)"),
        CheckResult("training", "torch", Status.FAIL, "not run: GPU expected but none usable"),
    ]
    group_follow_ons(results)
    assert [r.status for r in results[1:]] == [Status.NOT_RUN] * 3
    assert all(r.follows == ["imports.torch"] for r in results[1:])
    assert needs_of("kernels.tensorflow") == ("devices.tensorflow",)
    assert needs_of("kernels.torch_device_assert") == ("devices.torch",)
