"""CUDA architecture compatibility (envcheck.gpuarch) against CUDA's rules and torch's own table."""

from __future__ import annotations

import pytest

from envcheck import diagnose
from envcheck.gpuarch import from_torch_arch_list, parse_target, runs_on


@pytest.mark.parametrize(
    ("targets", "cc", "runs_as"),
    [
        (["sm_80"], "8.6", "sm_80 code"),  # same major, higher minor: binary compatible
        (["sm_86"], "8.0", None),  # never to a lower minor
        (["sm_80"], "9.0", None),  # never across majors
        (["sm_80"], "8.7", None),  # Jetson Orin (integrated) runs only its own code
        (["sm_87"], "8.7", "sm_87 code"),
        (["sm_90a"], "9.0", "sm_90a code"),  # arch-specific: exactly that GPU
        (["sm_100a"], "10.3", None),
        (["sm_100f"], "10.3", "sm_100f code"),  # family: later members of the family
        (["sm_103f"], "10.0", None),
        (["sm_100"], "10.1", None),  # Thor (10.1 before CUDA 13) is not a 10.x dGPU
        (["sm_101"], "11.0", "sm_101 code"),  # ... and was renamed 11.0 in CUDA 13
        (["compute_90"], "12.0", "compute_90 PTX, JIT-compiled"),  # PTX: forward, any major
        (["compute_90"], "8.9", None),  # PTX never backward
        (["compute_90a"], "10.0", None),
        (["sm_120", "compute_120"], "12.1", "sm_120 code"),  # a cubin beats PTX
        (["sm_75", "compute_120"], "8.0", None),
        (["sm_50", "bogus", "compute_50"], "5.2", "sm_50 code"),  # unknown words are skipped
    ],
)
def test_runs_on_follows_cuda_rules(targets, cc, runs_as):
    match = runs_on(targets, cc)
    assert (match.describe() if match else None) == runs_as


def test_binary_rule_agrees_with_torchs_device_requirement_table():
    cuda = pytest.importorskip("torch.cuda")
    table = cuda.DEVICE_REQUIREMENT
    known = sorted(table)
    for code in known:
        for device in known:
            expected = device in table[code]
            got = runs_on([f"sm_{code}"], (device // 10, device % 10)) is not None
            assert got == expected, (code, device)


def test_torch_arch_list_becomes_the_targets_torch_reports():
    assert from_torch_arch_list("7.5;8.0;8.6;9.0;10.0;11.0;12.0+PTX") == [
        "sm_75",
        "sm_80",
        "sm_86",
        "sm_90",
        "sm_100",
        "sm_110",
        "sm_120",
        "compute_120",
    ]
    assert from_torch_arch_list("9.0a;10.0f+PTX") == ["sm_90a", "sm_100f", "compute_100f"]


@pytest.mark.parametrize("text", ["sm", "sm_", "sm_x0", "lto_90", "sm_9", "compute"])
def test_parse_target_rejects_non_targets(text):
    with pytest.raises(ValueError):
        parse_target(text)


def test_verify_arch_check_accepts_same_major_and_family_targets():
    dev = [{"index": 0, "name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}]
    # conda-forge's CUDA 12 PyTorch carries sm_86 but no sm_89: the 4090 runs sm_86 code
    assert diagnose.arch_missing(dev, ["sm_80", "sm_86", "sm_90"]) is None
    gb300 = [{"index": 0, "name": "NVIDIA GB300", "compute_capability": "10.3"}]
    assert diagnose.arch_missing(gb300, ["sm_90", "sm_100f"]) is None
    dx = diagnose.arch_missing(gb300, ["sm_90", "sm_100a"])
    assert dx and "sm_103" in dx.cause and "envcheck doctor" in dx.fix
