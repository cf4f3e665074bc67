"""The probe host: where a ProbeSpec runs, and a framework imported once per verify."""

from __future__ import annotations

import pytest

from envcheck.checks import REGISTRY, Options
from envcheck.checks.registry import PROBES, ProbeSpec
from envcheck.model import Status
from envcheck.profiles import PROFILES
from envcheck.verify import verify


def test_spec_defaults_and_the_plugin_form():
    # the form other probes are added with: target, timeout, framework
    spec = ProbeSpec("envcheck.probes.compile_probe:torch_compile", 300, "torch")
    assert spec.isolation == "shared" and spec.args is None
    assert ProbeSpec("envcheck.probes.nvml:gather", 30).isolation == "fresh"
    assert PROBES["torch.assert"].isolation == "fresh"  # a device assert poisons the context
    assert PROBES["torch.distributed"].isolation == "launcher"
    assert PROBES["environment"].isolation == "inprocess"
    with pytest.raises(ValueError, match="isolation"):
        ProbeSpec("m:f", 1, "torch", isolation="warm")


def test_torch_probes_share_one_worker_that_imports_torch_once():
    checks = [c for c in REGISTRY if c.check_id in ("imports.torch", "kernels.torch")]
    report, ctx = verify(PROFILES["cpu"], ("torch",), False, Options(), checks=checks)
    assert [c.status for c in report.checks] == [Status.PASS, Status.PASS], report.checks
    facts, kernels = ctx.facts["torch.facts"], ctx.facts["torch.kernels"]
    assert facts.isolation == kernels.isolation == "shared"
    assert facts.timing["import"] > 0.05  # the worker's first call imported torch ...
    assert kernels.timing.get("import", 0.0) < 0.05  # ... and the next one found it imported
    assert "start" in facts.timing and "start" not in kernels.timing
    split = report.to_dict()["probes"]["torch.kernels"]
    assert split["isolation"] == "shared" and split["timing"]["work"] > 0
