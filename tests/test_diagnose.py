"""Diagnosis rules replayed on facts recorded from healthy and broken machines."""

from __future__ import annotations

import copy

from facts_library import H100, broken, healthy_cuda12

from envcheck import diagnose
from envcheck.checks import REGISTRY, Options
from envcheck.model import Status
from envcheck.profiles import PROFILES
from envcheck.runner import ProbeOutcome
from envcheck.verify import verify


def replay(facts, profile="cuda12", frameworks=("torch", "tensorflow"), require_gpu=False):
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    light = [c for c in REGISTRY if not c.heavy and c.check_id != "environment.lock_drift"]
    report, _ = verify(
        PROFILES[profile], frameworks, require_gpu, Options(), recorded=recorded, checks=light
    )
    return {c.check_id: c for c in report.checks}, report


def test_healthy_machine_passes_every_light_check():
    checks, report = replay(healthy_cuda12())
    assert {c.status for c in checks.values()} == {Status.PASS}, [
        (k, c.message, c.cause) for k, c in checks.items() if c.status is not Status.PASS
    ]
    assert report.exit_code == 0


def test_cpu_build_in_cuda_profile_names_the_build_to_install():
    facts = broken(torch_facts__cuda_build=None, torch_facts__cuda_available=False)
    facts["environment"]["data"]["conda_packages"]["pytorch"]["build"] = "cpu_mkl_py312_h0"
    checks, report = replay(facts)
    c = checks["build.torch"]
    assert c.status is Status.FAIL
    assert "CPU-only build (conda build cpu_mkl_py312_h0)" in c.cause
    assert "cuda12*" in c.fix and "pixi install -e cuda12" in c.fix
    assert checks["devices.torch"].status is Status.FAIL
    assert report.exit_code == 1


def test_driver_too_old_for_the_build():
    facts = broken(
        nvml__cuda_driver_version="11.4",
        nvml__driver_version="470.82.01",
        torch_facts__cuda_available=False,
        torch_facts__init_error="RuntimeError: The NVIDIA driver on your system is "
        "too old (found version 11040).",
    )
    checks, _ = replay(facts)
    assert checks["devices.gpus"].status is Status.FAIL
    assert "supports CUDA 11.4" in checks["devices.gpus"].cause
    assert ">= 525.60.13" in checks["devices.gpus"].fix
    dev = checks["devices.torch"]
    assert dev.status is Status.FAIL and "built with CUDA 12.9" in dev.cause
    assert "pixi run -e cuda11 verify" in dev.fix


def test_no_driver_at_all():
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
        init_error="RuntimeError: Found no NVIDIA driver",
    )
    checks, _ = replay(facts, frameworks=("torch",))
    assert checks["devices.gpus"].status is Status.FAIL
    assert "no NVIDIA driver" in checks["devices.torch"].cause
    assert "pixi run -e cpu verify" in checks["devices.torch"].fix


def test_gpu_arch_missing_from_build():
    facts = broken(torch_facts__arch_list=["sm_75", "sm_80", "sm_86"])
    checks, _ = replay(facts)
    c = checks["devices.torch"]
    assert c.status is Status.FAIL and "sm_90" in c.cause and "architecture list" in c.cause


def test_ptx_in_arch_list_covers_newer_gpu():
    assert (
        diagnose.arch_missing(
            [{"index": 0, "name": "x", "compute_capability": "9.0"}], ["sm_80", "compute_80"]
        )
        is None
    )


def test_exclusive_process_gpu_busy():
    facts = healthy_cuda12()
    gpu = dict(H100, compute_mode="exclusive_process", processes=1)
    facts["nvml"]["data"]["gpus"] = [gpu]
    facts["torch.facts"]["data"].update(
        cuda_available=False,
        devices=[],
        init_error="RuntimeError: CUDA error: all CUDA-capable devices are busy or unavailable",
    )
    checks, _ = replay(facts, frameworks=("torch",))
    assert checks["devices.gpus"].status is Status.WARN
    c = checks["devices.torch"]
    assert c.status is Status.FAIL and "exclusive-process" in c.cause
    assert "nvidia-smi -c DEFAULT" in c.fix


def test_tensorflow_cannot_load_gpu_libraries():
    facts = broken(tensorflow_facts__devices=[])
    facts["tensorflow.facts"]["stderr"] = (
        "W0000 gpu_device.cc:2344] Cannot dlopen some GPU libraries. Please make sure the missing "
        "libraries mentioned above are installed properly."
    )
    checks, _ = replay(facts)
    c = checks["devices.tensorflow"]
    assert c.status is Status.FAIL and "could not load its GPU libraries" in c.cause
    assert "silently falls back to the CPU" in c.message


def test_cuda_visible_devices_empty():
    facts = healthy_cuda12()
    facts["environment"]["data"]["variables"]["CUDA_VISIBLE_DEVICES"] = ""
    facts["torch.facts"]["data"].update(cuda_available=False, devices=[], init_error=None)
    checks, _ = replay(facts, frameworks=("torch",))
    assert checks["environment.cuda_visible_devices"].status is Status.FAIL
    assert "hides every GPU" in checks["devices.torch"].cause


def test_ld_library_path_shadowing_and_cudnn_mismatch():
    facts = broken(torch_facts__cudnn_runtime=8907)
    facts["environment"]["data"]["shadowing"] = [
        {"path": "/usr/local/cuda/lib64", "libraries": ["libcudnn.so.8", "libcudart.so.11.0"]}
    ]
    checks, _ = replay(facts)
    assert checks["environment.ld_library_path"].status is Status.WARN
    assert "/usr/local/cuda/lib64" in checks["environment.ld_library_path"].cause
    c = checks["build.torch"]
    assert c.status is Status.FAIL and "cuDNN 91002 but loads cuDNN 8907" in c.cause


def test_wrong_cuda_major_for_profile():
    checks, _ = replay(healthy_cuda12(), profile="cuda13", frameworks=("torch",))
    c = checks["build.torch"]
    assert c.status is Status.FAIL and "expects CUDA 13" in c.cause


def test_mig_mode_warns():
    facts = healthy_cuda12()
    facts["nvml"]["data"]["gpus"] = [dict(H100, mig_mode=True)]
    checks, report = replay(facts)
    assert checks["devices.gpus"].status is Status.WARN
    assert "MIG" in checks["devices.gpus"].devices[0].message
    assert report.exit_code == 0


def test_out_of_memory_advice():
    dx = diagnose.out_of_memory("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert dx and "smaller batch" in dx.fix and "mixed precision" in dx.fix
    assert diagnose.out_of_memory("ValueError: shapes differ") is None


def test_replayed_facts_are_not_mutated():
    facts = healthy_cuda12()
    before = copy.deepcopy(facts)
    replay(facts)
    assert facts == before


def test_framework_that_does_not_import_is_reported_once():
    facts = healthy_cuda12()
    facts["torch.facts"] = {
        **facts["torch.facts"],
        "ok": False,
        "data": None,
        "failure": "error",
        "error": "ModuleNotFoundError: No module named 'torch'",
    }
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    checks = [c for c in REGISTRY if c.check_id != "environment.lock_drift"]
    report, _ = verify(
        PROFILES["cuda12"], ("torch",), False, Options(), recorded=recorded, checks=checks
    )
    by_id = {c.check_id: c for c in report.checks}
    assert by_id["imports.torch"].status is Status.FAIL
    assert by_id["imports.torch"].message == "torch is not installed"
    for cid in ("kernels.torch", "kernels.torch_device_assert", "training.torch"):
        assert by_id[cid].status is Status.SKIP
        assert by_id[cid].message == "not run: probe torch.facts failed (see imports.torch)"
    assert report.exit_code == 1


def test_xla_without_libdevice_fails_tensorflow_training_with_xla_flags_fix():
    """XLA's own log line and error, as TF 2.19-2.21 print them when XLA_FLAGS is unset."""
    facts = healthy_cuda12()
    facts["environment"]["data"]["variables"].pop("XLA_FLAGS", None)
    facts["tensorflow.train"] = {
        **facts["tensorflow.facts"],
        "target": "envcheck.training.tf_mnist:train",
        "ok": False,
        "data": None,
        "failure": "error",
        "error": "InternalError: libdevice not found at ./libdevice.10.bc [Op:__inference_step]",
        "stderr": "W0000 external/local_xla/xla/service/gpu/llvm_gpu_backend/"
        "nvptx_backend.cc:93] Can't find libdevice directory ${CUDA_DIR}/nvvm/libdevice. "
        "This may result in compilation or runtime failures\n",
    }
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    checks = [c for c in REGISTRY if c.check_id == "training.tensorflow"]
    report, _ = verify(
        PROFILES["cuda12"], ("tensorflow",), False, Options(), recorded=recorded, checks=checks
    )
    result = report.checks[0]
    assert result.status is Status.FAIL and result.message == "XLA cannot find libdevice"
    assert "XLA_FLAGS is unset" in result.cause
    assert "XLA_FLAGS=--xla_gpu_cuda_data_dir=$CONDA_PREFIX" in result.fix
    assert diagnose.xla_libdevice_missing("InternalError: shapes differ", {}) is None


def test_keras_import_time_is_reported():
    checks, _ = replay(healthy_cuda12())
    keras = checks["imports.keras"]
    assert keras.message == "keras 3.10.0 in 0.0 s" and keras.figures["seconds"] == 0.0
