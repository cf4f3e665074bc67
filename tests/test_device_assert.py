"""kernels.torch_device_assert: only CUDA's device-side assert counts as "the assert fired".

torch >= 2.8 raises torch.AcceleratorError (with CUDA's error code as .error_code) and
torch.OutOfMemoryError, both RuntimeError subclasses, so an out-of-memory GPU, a build without
kernels for the GPU or a broken context also raise inside the probe. The exceptions here are
the real torch classes, carrying the text torch's c10_cuda_check_implementation gives them.
"""

from __future__ import annotations

import pytest
from facts_library import healthy_cuda12
from test_diagnose import replay

from envcheck import diagnose
from envcheck.model import Status
from envcheck.probes.torch_probe import raised

torch = pytest.importorskip("torch")

# every CUDA error torch raises ends with this suffix (c10/cuda/CUDAException.cpp)
SUFFIX = (
    "\nCUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1"
    "\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n"
)
OOM_TEXT = (
    "CUDA out of memory. Tried to allocate 2.00 MiB. GPU 0 has a total capacity of 79.19 GiB of "
    "which 1.06 MiB is free. Process 4711 has 79.18 GiB memory in use. Of the allocated memory "
    "0 bytes is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated."
)


def accelerator_error(text: str, code: int) -> Exception:
    """torch.AcceleratorError as torch >= 2.8 raises it: CUDA's text, .error_code set."""
    exc = torch.AcceleratorError(f"CUDA error: {text}{SUFFIX}")
    exc.error_code = code  # torch's C++ sets it on the instance
    return exc


def verdict(exc: BaseException, **torch_changes):
    facts = healthy_cuda12()
    facts["torch.facts"]["data"].update(torch_changes)
    facts["torch.assert"] = {**facts["torch.facts"], "data": {"ran": True, **raised(exc)}}
    checks, _ = replay(facts, frameworks=("torch",), only={"kernels.torch_device_assert"})
    return checks["kernels.torch_device_assert"]


@pytest.mark.parametrize(
    "exc",
    [
        accelerator_error("device-side assert triggered", 710),  # torch >= 2.8
        RuntimeError(f"CUDA error: device-side assert triggered{SUFFIX}"),  # torch < 2.8
    ],
    ids=["AcceleratorError", "RuntimeError"],
)
def test_the_device_side_assert_passes(exc):
    c = verdict(exc)
    assert c.status is Status.PASS, c.cause
    assert c.message == f"a failing device-side assert raised {type(exc).__name__}"


def test_out_of_memory_is_a_fail_with_out_of_memory_advice():
    c = verdict(torch.OutOfMemoryError(OOM_TEXT))
    assert c.status is Status.FAIL
    assert c.message == "the device-side assert could not run: OutOfMemoryError before it fired"
    assert c.cause.startswith("the GPU ran out of memory: CUDA out of memory. Tried to allocate")
    assert "smaller batch" in c.fix


def test_no_kernel_image_names_the_missing_architecture():
    exc = accelerator_error("no kernel image is available for execution on the device", 209)
    c = verdict(exc, arch_list=["sm_80", "sm_86"])  # a build without sm_90, on the H100
    assert c.status is Status.FAIL
    assert "(sm_90) is not in the build's architecture list (sm_80 sm_86)" in c.cause


def test_a_busy_gpu_is_a_fail_that_says_so():
    c = verdict(accelerator_error("CUDA-capable device(s) is/are busy or unavailable", 46))
    assert c.status is Status.FAIL
    assert "busy or unavailable" in c.cause and "nvidia-smi -c DEFAULT" in c.fix


def test_any_other_cuda_error_is_a_fail_naming_it():
    c = verdict(accelerator_error("an illegal memory access was encountered", 700))
    assert c.status is Status.FAIL
    assert "AcceleratorError: CUDA error: an illegal memory access was encountered" in c.cause
    assert "xid" in c.fix


def test_the_dsa_suffix_alone_is_not_the_assert():
    """The suffix names device-side assertions in every CUDA error: text-only matching must not
    count it (older torch records no error code)."""
    text = f"CUDA error: unspecified launch failure{SUFFIX}".replace("\n", " ")
    assert not diagnose.device_assert_fired("RuntimeError", text)
    assert diagnose.device_assert_fired("RuntimeError", "CUDA error: device-side assert triggered")
    assert not diagnose.device_assert_fired("AcceleratorError", "device-side assert triggered", 2)


def test_raised_records_the_class_code_and_first_line():
    got = raised(accelerator_error("device-side assert triggered", 710))
    assert got == {
        "raised": True,
        "error_type": "AcceleratorError",
        "error_code": 710,
        "error": "CUDA error: device-side assert triggered",
    }
    assert raised(torch.OutOfMemoryError(OOM_TEXT))["error_code"] is None
