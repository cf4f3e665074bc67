"""Diagnosis rules replayed on facts recorded from healthy and broken machines."""

from __future__ import annotations

import copy

import pytest
from facts_library import CPU_TORCH_KEYS, H100, broken, cpu_torch, healthy_cuda12

from envcheck import diagnose
from envcheck.checks import REGISTRY, Options
from envcheck.errors import EnvcheckError
from envcheck.model import Status
from envcheck.profiles import PROFILES, infer_profile
from envcheck.runner import ProbeOutcome
from envcheck.training import low_precision
from envcheck.verify import verify


def replay(
    facts,
    profile="cuda12",
    frameworks=("torch", "tensorflow"),
    require_gpu=False,
    only=None,
    **kw,
):
    """Run the light checks (or the checks named in ``only``) over recorded facts."""
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    if only:
        checks = [c for c in REGISTRY if c.check_id in only]
    else:
        checks = [c for c in REGISTRY if not c.heavy and c.check_id != "environment.lock_drift"]
    report, _ = verify(
        PROFILES[profile],
        frameworks,
        require_gpu,
        Options(),
        recorded=recorded,
        checks=checks,
        **kw,
    )
    return {c.check_id: c for c in report.checks}, report


def cuda13_torch(**changes):
    """The healthy machine with a pip PyTorch 2.11 cu130 (cuDNN 9.13) instead, no TensorFlow."""
    facts = healthy_cuda12()
    del facts["tensorflow.facts"]
    facts["torch.facts"]["data"].update(
        version="2.11.0+cu130",
        cuda_build="13.0",
        cudnn_compile=[9, 13, 0],
        cudnn_loaded=[9, 13, 0],
        cudnn_runtime=91300,
    )
    facts["environment"]["data"].update(
        conda_prefix=None, pixi_environment=None, variables={}, conda_packages={}
    )
    for key, value in changes.items():
        facts["torch.facts"]["data"][key] = value
    return facts


def test_healthy_machine_passes_every_light_check():
    checks, report = replay(healthy_cuda12())
    assert {c.status for c in checks.values()} == {Status.PASS}, [
        (k, c.message, c.cause) for k, c in checks.items() if c.status is not Status.PASS
    ]
    assert report.exit_code == 0


def test_cpu_build_in_cuda_profile_names_the_build_to_install():
    facts = cpu_torch(healthy_cuda12())
    assert set(facts["torch.facts"]["data"]) == set(CPU_TORCH_KEYS)  # no arch_list, cuDNN, NCCL
    facts["environment"]["data"]["conda_packages"]["pytorch"]["build"] = "cpu_mkl_py312_h0"
    checks, report = replay(facts)
    c = checks["build.torch"]
    assert c.status is Status.FAIL
    assert "CPU-only build (conda build cpu_mkl_py312_h0)" in c.cause
    assert "cuda12*" in c.fix and "pixi install --locked -e cuda12" in c.fix
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
    assert "pixi run --locked -e cuda11 verify" in dev.fix


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
    assert "pixi run --locked -e cpu verify" in checks["devices.torch"].fix


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
    facts = broken(torch_facts__cudnn_loaded=[8, 9, 7], torch_facts__cudnn_runtime=8907)
    facts["environment"]["data"]["shadowing"] = [
        {"path": "/usr/local/cuda/lib64", "libraries": ["libcudnn.so.8", "libcudart.so.11.0"]}
    ]
    checks, _ = replay(facts)
    assert checks["environment.ld_library_path"].status is Status.WARN
    assert "/usr/local/cuda/lib64" in checks["environment.ld_library_path"].cause
    c = checks["build.torch"]
    assert c.status is Status.FAIL and "cuDNN 9.10.2 but loads cuDNN 8.9.7" in c.cause


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
        # did not run because imports.torch failed: its own state, grouped under that root
        assert by_id[cid].status is Status.NOT_RUN
        assert by_id[cid].follows == ["imports.torch"]
        assert by_id[cid].message == "not run: probe torch.facts failed (see imports.torch)"
    assert report.root_causes == ["imports.torch"]
    assert report.exit_code == 1


# ---- cuDNN as torch really reports it: tuples for compiled/loaded, an int from version()


@pytest.mark.parametrize(
    ("compiled", "loaded", "runtime"),
    [
        ([9, 13, 0], [9, 13, 0], 91300),  # pip torch 2.11 cu130
        ([9, 10, 2], [9, 10, 2], 91002),  # conda-forge cuda12 env
        ([9, 10, 2], [9, 14, 0], 91400),  # a newer minor loads fine: torch's own rule
        ([8, 9, 7], [8, 9, 7], 8907),  # cuDNN 8 encodes its int with *1000
    ],
)
def test_cudnn_compiled_tuple_and_runtime_int_agree(compiled, loaded, runtime):
    facts = broken(
        torch_facts__cudnn_compile=compiled,
        torch_facts__cudnn_loaded=loaded,
        torch_facts__cudnn_runtime=runtime,
    )
    checks, _ = replay(facts, frameworks=("torch",))
    c = checks["build.torch"]
    assert c.status is Status.PASS, c.cause
    assert f"cuDNN {'.'.join(map(str, loaded))}," in c.message


def test_cudnn_facts_without_loaded_tuple_compare_the_int():
    """Facts saved before cudnn_loaded existed: the int runtime against the compiled tuple."""
    facts = broken(torch_facts__cudnn_compile=[9, 13, 0], torch_facts__cudnn_runtime=91300)
    del facts["torch.facts"]["data"]["cudnn_loaded"]
    checks, _ = replay(facts, frameworks=("torch",))
    assert checks["build.torch"].status is Status.PASS
    facts["torch.facts"]["data"]["cudnn_runtime"] = 8907
    checks, _ = replay(facts, frameworks=("torch",))
    assert checks["build.torch"].status is Status.FAIL
    assert "cuDNN 9.13.0 but loads cuDNN 8.9.7" in checks["build.torch"].cause


def test_cudnn_older_minor_is_incompatible():
    facts = broken(torch_facts__cudnn_loaded=[9, 8, 0], torch_facts__cudnn_runtime=90800)
    checks, _ = replay(facts, frameworks=("torch",))
    c = checks["build.torch"]
    assert c.status is Status.FAIL and "cuDNN 9.10.2 but loads cuDNN 9.8.0" in c.cause
    assert "unset LD_LIBRARY_PATH" in c.fix


# torch/backends/cudnn/__init__.py raises these from cudnn.version(); the probe keeps the text
TORCH_CUDNN_INCOMPATIBLE = (
    "RuntimeError: cuDNN version incompatibility: PyTorch was compiled  against (9, 10, 2) but "
    "found runtime version (8, 9, 7). PyTorch already comes bundled with cuDNN. One option to "
    "resolving this error is to ensure PyTorch can find the bundled cuDNN. Looks like your "
    "LD_LIBRARY_PATH contains incompatible version of cudnn. Please either remove it from the "
    "path or install cudnn (9, 10, 2)"
)
TORCH_CUDNN_OLD_GPU = (
    "RuntimeError: cuDNN version 91100 is not compatible with devices with SM < 7.5. Please "
    "install a version of PyTorch with a compatible cuDNN version. "
    "https://github.com/pytorch/pytorch/blob/main/RELEASE.md#release-compatibility-matrix"
)


@pytest.mark.parametrize(
    ("error", "fix_part"),
    [(TORCH_CUDNN_INCOMPATIBLE, "unset LD_LIBRARY_PATH"), (TORCH_CUDNN_OLD_GPU, "sm_75")],
)
def test_cudnn_version_raising_is_a_failure_with_its_text(error, fix_part):
    # version() raised, so the probe has no runtime int: before, that passed silently
    facts = broken(torch_facts__cudnn_runtime=None, torch_facts__cudnn_error=error)
    checks, report = replay(facts, frameworks=("torch",))
    c = checks["build.torch"]
    assert c.status is Status.FAIL and report.exit_code == 1
    assert c.cause.startswith("PyTorch refuses the cuDNN it loads: RuntimeError: cuDNN version")
    assert fix_part in c.fix


def test_cudnn_version_decoding():
    assert diagnose.cudnn_version(91300) == (9, 13, 0)
    assert diagnose.cudnn_version(90100) == (9, 1, 0)
    assert diagnose.cudnn_version(8907) == (8, 9, 7)
    assert diagnose.cudnn_version([9, 13, 0]) == (9, 13, 0)
    assert diagnose.cudnn_version((9, 13, 0)) == (9, 13, 0)
    assert diagnose.cudnn_version(None) is None


# ---- the driver too old, in PyTorch's current words


TORCH_DRIVER_TOO_OLD = (
    "RuntimeError: The NVIDIA driver on your system is too old (found version 12080). Please "
    "update your GPU driver by downloading and installing a new version from the URL: "
    "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to "
    "install a PyTorch version that has been compiled with your version of the CUDA driver."
)


def test_driver_too_old_read_from_pytorch_error_without_nvml():
    """A cu130 torch on a CUDA 12.8 driver (570), NVML giving no data: the error says it all."""
    facts = cuda13_torch(cuda_available=False, devices=[], init_error=TORCH_DRIVER_TOO_OLD)
    facts["nvml"]["data"] = {
        "available": False,
        "reason": "query_failed",
        "binding": "ctypes",
        "error": "nvmlDeviceGetMemoryInfo: Unknown Error (NVML error 999)",
    }
    checks, _ = replay(facts, profile="cuda13", frameworks=("torch",))
    assert checks["devices.gpus"].status is Status.WARN  # no NVML data is not a verdict
    c = checks["devices.torch"]
    assert c.status is Status.FAIL
    assert c.cause == (
        "the NVIDIA driver supports CUDA 12.8, but the framework was built with CUDA 13.0"
    )
    # a pip install (no pixi/conda env): the fix is the pip way to the driver's CUDA line
    assert ">= 580.65.06 (CUDA 13)" in c.fix and "`envcheck verify --expect cuda12`" in c.fix
    assert "https://download.pytorch.org/whl/cu128" in c.fix and "pixi" not in c.fix
    assert "envcheck doctor" in c.fix


def test_driver_too_old_with_nvml_names_the_driver():
    facts = cuda13_torch(cuda_available=False, devices=[], init_error=TORCH_DRIVER_TOO_OLD)
    facts["nvml"]["data"].update(driver_version="570.153.02", cuda_driver_version="12.8")
    checks, _ = replay(facts, profile="cuda13", frameworks=("torch",))
    gpus = checks["devices.gpus"]
    assert gpus.status is Status.FAIL
    assert "driver 570.153.02 supports CUDA 12.8" in gpus.cause
    assert ">= 580.65.06" in gpus.fix
    assert "driver 570.153.02 supports CUDA 12.8" in checks["devices.torch"].cause


@pytest.mark.parametrize(("major", "driver"), [(11, "450.80.02"), (12, "525.60.13")])
def test_driver_fix_names_the_driver_each_cuda_line_needs(major, driver):
    dx = diagnose.driver_too_old({"cuda_driver_version": "10.2"}, f"{major}.8")
    assert dx and f">= {driver} (CUDA {major})" in dx.fix


def test_driver_cuda_from_error():
    assert diagnose.driver_cuda_from_error(TORCH_DRIVER_TOO_OLD) == "12.8"
    # torch < 1.x printed it over several lines, from Python
    old = "The NVIDIA driver on your system is too old (found version 11040).\nPlease update"
    assert diagnose.driver_cuda_from_error(old) == "11.4"
    assert diagnose.driver_cuda_from_error("RuntimeError: Found no NVIDIA driver") is None


# ---- NVML unavailable is no data, not a crash


@pytest.mark.parametrize("reason", ["binding_missing", "query_failed"])
def test_nvml_without_data_warns_instead_of_crashing(reason):
    facts = healthy_cuda12()
    facts["nvml"]["data"] = {"available": False, "reason": reason, "error": "no data"}
    checks, report = replay(facts, frameworks=("torch",))
    c = checks["devices.gpus"]
    assert c.status is Status.WARN and c.message == "NVML gave no data on the driver and GPUs"
    assert checks["devices.torch"].status is Status.PASS
    assert report.exit_code == 0


# ---- no --expect and no $ENVCHECK_PROFILE: the profile from the installed build


def test_cuda_torch_without_profile_infers_its_cuda_line():
    checks, report = replay(cuda13_torch(), profile="cpu", profile_source="infer")
    assert report.profile == "cuda13" and report.frameworks == ["torch"]
    p = checks["environment.profile"]
    assert p.status is Status.PASS
    assert p.message == (
        "profile cuda13: torch on CUDA 13 builds on a GPU (inferred: PyTorch is a CUDA 13.0 "
        "build; --expect cpu checks the CPU only)"
    )
    # a CUDA profile: the GPU is required, so a GPU-less run can no longer pass on the CPU
    assert checks["devices.torch"].status is Status.PASS
    assert report.exit_code == 0


def test_inferred_cuda_profile_fails_where_the_gpu_is_missing():
    facts = cuda13_torch(cuda_available=False, devices=[], init_error="RuntimeError: x")
    facts["nvml"]["data"] = {"available": False, "reason": "no_driver", "error": "NVML gone"}
    checks, report = replay(facts, profile="cpu", profile_source="infer")
    assert report.profile == "cuda13" and report.exit_code == 1
    assert checks["devices.torch"].status is Status.FAIL


def test_cpu_builds_infer_the_cpu_profile():
    facts = cpu_torch(cuda13_torch(), version="2.11.0+cpu")
    checks, report = replay(facts, profile="cpu", profile_source="infer")
    assert report.profile == "cpu"
    assert "no installed framework is a CUDA build" in checks["environment.profile"].message


def test_named_profile_is_reported_as_named():
    checks, _ = replay(healthy_cuda12(), profile_source="$ENVCHECK_PROFILE")
    assert checks["environment.profile"].message.endswith("(from $ENVCHECK_PROFILE)")


def test_frameworks_on_different_cuda_lines_ask_for_expect():
    profile, why = infer_profile({"torch": "12.9", "tensorflow": "12.8"})
    assert profile.name == "cuda12" and "TensorFlow is a CUDA 12.8 build" in why
    with pytest.raises(EnvcheckError) as err:
        infer_profile({"torch": "13.0", "tensorflow": "12.8"})
    assert err.value.exit_code == 2 and "pass --expect" in err.value.message
    with pytest.raises(EnvcheckError):
        infer_profile({"torch": "14.0"})


# ---- scientific stack outside a pixi env: the env's packages, not envcheck's


def _science_missing(facts, module):
    facts["science"]["data"]["modules"][module] = {
        "ok": False,
        "error": f"ModuleNotFoundError: No module named '{module}'",
    }
    return facts


@pytest.mark.parametrize("module", ["scipy", "pandas", "matplotlib"])
def test_env_packages_missing_outside_pixi_are_skipped(module):
    checks, report = replay(
        _science_missing(cuda13_torch(), module), profile="cuda13", frameworks=("torch",)
    )
    c = checks[f"imports.{module}"]
    assert c.status is Status.SKIP and "outside a pixi/conda env" in c.message
    assert report.exit_code == 0


def test_env_packages_missing_inside_pixi_env_fail_with_pixi_advice():
    checks, _ = replay(_science_missing(healthy_cuda12(), "scipy"))
    c = checks["imports.scipy"]
    assert c.status is Status.FAIL and "pixi install" in c.fix


def test_numpy_missing_outside_pixi_fails_with_pip_advice():
    checks, _ = replay(_science_missing(cuda13_torch(), "numpy"), profile="cuda13")
    c = checks["imports.numpy"]
    assert c.status is Status.FAIL and c.fix.startswith("pip install numpy")


# ---- mixed precision by compute capability


@pytest.mark.parametrize(
    ("gpu", "capability", "dtype"),
    [
        (True, (9, 0), "bfloat16"),  # H100/H200
        (True, (8, 0), "bfloat16"),  # A100
        (True, (7, 5), "float16"),  # T4: is_bf16_supported() is True (emulated) in torch 2.x
        (True, (6, 1), "float16"),
        (False, None, "bfloat16"),
    ],
)
def test_low_precision_follows_compute_capability(gpu, capability, dtype):
    assert low_precision(gpu, capability) == dtype


# ---- TensorFlow names the missing library (dso_loader, verbose level 1)


def tf_dlopen_log(library: str, why: str) -> str:
    """TF 2.19-2.21's stderr with TF_CPP_MIN_LOG_LEVEL=0 and TF_CPP_VMODULE=dso_loader=1."""
    return (
        "I0000 00:00:1732690201.101230   41277 dso_loader.cc:76] Successfully opened dynamic "
        "library libcudart.so.12\n"
        f"I0000 00:00:1732690201.211407   41277 dso_loader.cc:86] Could not load dynamic "
        f"library '{library}'; dlerror: {why}; LD_LIBRARY_PATH: /usr/local/nvidia/lib64\n"
        "W0000 00:00:1732690201.211490   41277 gpu_device.cc:2344] Cannot dlopen some GPU "
        "libraries. Please make sure the missing libraries mentioned above are installed "
        "properly if you would like to use GPU. Follow the guide at "
        "https://www.tensorflow.org/install/gpu for how to download and setup the required "
        "libraries for your platform.\nSkipping registering GPU devices...\n"
    )


def test_tensorflow_names_the_library_it_could_not_load():
    facts = broken(tensorflow_facts__devices=[])
    facts["tensorflow.facts"]["stderr"] = tf_dlopen_log(
        "libcudnn.so.9", "libcudnn.so.9: cannot open shared object file: No such file or directory"
    )
    checks, _ = replay(facts)
    c = checks["devices.tensorflow"]
    assert c.status is Status.FAIL
    assert c.cause == (
        "TensorFlow could not load its GPU libraries: libcudnn.so.9 (libcudnn.so.9: cannot "
        "open shared object file: No such file or directory)"
    )
    assert "pixi install --locked -e cuda12" in c.fix


def test_tensorflow_without_the_driver_library_points_at_the_driver():
    dx = diagnose.tf_gpu_libs_missing(
        tf_dlopen_log("libcuda.so.1", "libcuda.so.1: cannot open shared object file")
    )
    assert dx and "libcuda.so.1" in dx.cause and "driver" in dx.fix


# ---- out of GPU memory, wherever it is found first; CUDA_VISIBLE_DEVICES naming no GPU

TORCH_OOM = (
    "OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 MiB. GPU 0 has a total "
    "capacity of 139.80 GiB of which 212.00 MiB is free. Process 4242 has 139.35 GiB memory in "
    "use. Of the allocated memory 0 bytes is allocated by PyTorch"
)


def test_out_of_memory_in_kernels_probe_gives_the_oom_fixes():
    facts = healthy_cuda12()
    facts["torch.kernels"] = {
        "target": "envcheck.probes.torch_probe:kernels",
        "ok": False,
        "data": {},
        "failure": "error",
        "error": TORCH_OOM,
    }
    checks, _ = replay(facts, frameworks=("torch",), only=("kernels.torch",))
    c = checks["kernels.torch"]
    assert c.status is Status.FAIL and c.message == "probe torch.kernels ran out of GPU memory"
    for fix in ("smaller batch", "gradient accumulation", "mixed precision"):
        assert fix in c.fix


def test_out_of_memory_at_cuda_init_names_it():
    facts = broken(
        torch_facts__cuda_available=False,
        torch_facts__devices=[],
        torch_facts__init_error="RuntimeError: CUDA error: out of memory",
    )
    checks, _ = replay(facts, frameworks=("torch",))
    c = checks["devices.torch"]
    assert c.status is Status.FAIL and "ran out of memory" in c.cause


@pytest.mark.parametrize(
    ("value", "diagnosed"),
    [
        ("GPU-00000000-0000-0000-0000-000000000000", True),
        ("7", True),
        ("GPU-8d1c", False),  # a unique prefix of the real UUID is what CUDA accepts
        ("0", False),
        ("MIG-1234", False),  # NVML's GPU list cannot judge MIG instances
    ],
)
def test_cuda_visible_devices_naming_no_gpu(value, diagnosed):
    env = {"variables": {"CUDA_VISIBLE_DEVICES": value}}
    nvml = healthy_cuda12()["nvml"]["data"]
    dx = diagnose.visible_devices_unmatched(env, nvml)
    assert (dx is not None) is diagnosed
    if diagnosed:
        assert "names no GPU of this machine" in dx.cause
        assert "GPU-8d1c2f4e-5a6b-7c8d-9e0f-0123456789ab" in dx.cause


def test_unknown_gpu_uuid_fails_devices_torch_with_the_cause():
    facts = broken(
        torch_facts__cuda_available=False,
        torch_facts__device_count=0,
        torch_facts__devices=[],
        torch_facts__init_error="RuntimeError: No CUDA GPUs are available",
    )
    facts["environment"]["data"]["variables"]["CUDA_VISIBLE_DEVICES"] = "GPU-deadbeef"
    checks, _ = replay(facts, frameworks=("torch",))
    c = checks["devices.torch"]
    assert c.status is Status.FAIL and "CUDA_VISIBLE_DEVICES='GPU-deadbeef'" in c.cause


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
