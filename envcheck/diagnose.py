"""Rules that turn gathered facts into a cause and a fix.

Each rule is a pure function of plain data, so recorded facts from a broken
machine can be replayed in tests and with ``envcheck verify --replay``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .gpuarch import runs_on, sm_name

# Minimum NVIDIA driver per CUDA major (CUDA release notes, minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
PIXI_ENV_FOR_MAJOR = {11: "cuda11", 12: "cuda12", 13: "cuda13"}
DOCTOR_HINT = "run `envcheck doctor` to see which env fits this machine"


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    fix: str


def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except (TypeError, ValueError):
        return None


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def visible_devices_hidden(env: dict[str, Any]) -> Diagnosis | None:
    value = env.get("variables", {}).get("CUDA_VISIBLE_DEVICES")
    if value is not None and value.strip() in ("", "-1", "none", "NoDevFiles"):
        return Diagnosis(
            f"CUDA_VISIBLE_DEVICES is set to {value!r}, which hides every GPU",
            "unset CUDA_VISIBLE_DEVICES or set it to the GPU indices to use (e.g. 0)",
        )
    return None


def visible_devices_unmatched(env: dict[str, Any], nvml: dict[str, Any]) -> Diagnosis | None:
    """CUDA_VISIBLE_DEVICES starts with an index or GPU UUID that no GPU of this machine has.

    CUDA stops reading the list at the first unknown entry, so then it sees no GPU at all.
    NVML ignores the variable, which is why its GPU list can name the real ones.
    """
    value = (env.get("variables", {}).get("CUDA_VISIBLE_DEVICES") or "").strip()
    gpus = nvml.get("gpus") or []
    if not value or not gpus:
        return None
    first = value.split(",")[0].strip()
    if first.isdigit():
        known = int(first) < len(gpus)
    elif first.upper().startswith("GPU-"):  # CUDA accepts a UUID or a unique prefix of one
        known = any(str(g.get("uuid") or "").upper().startswith(first.upper()) for g in gpus)
    else:  # MIG-... and other forms: NVML's list cannot tell
        return None
    if known:
        return None
    listed = ", ".join(f"{g.get('index')} ({g.get('uuid')})" for g in gpus)
    return Diagnosis(
        f"CUDA_VISIBLE_DEVICES={value!r} names no GPU of this machine, so CUDA sees none "
        f"(the GPUs: {listed})",
        "set CUDA_VISIBLE_DEVICES to an index or UUID that `nvidia-smi -L` lists, or unset it",
    )


def no_driver(nvml: dict[str, Any]) -> Diagnosis | None:
    if nvml.get("available") is False and nvml.get("reason") == "no_driver":
        return Diagnosis(
            f"no NVIDIA driver answers on this machine (NVML: {nvml.get('error')})",
            "run on a machine with an NVIDIA GPU and driver (check `nvidia-smi`), or use the cpu "
            f"environment: pixi run --locked -e cpu verify; {DOCTOR_HINT}",
        )
    if nvml.get("available") and not nvml.get("gpus"):
        return Diagnosis(
            "the NVIDIA driver is loaded but reports no GPU",
            "check the GPU is attached to this machine/container (`nvidia-smi -L`)",
        )
    return None


def container_without_gpu(env: dict[str, Any], nvml: dict[str, Any]) -> Diagnosis | None:
    """A container started without GPU access: NVML finds no driver library, and the container
    has no /dev/nvidia* devices either (what --gpus all / --nv would have given it)."""
    box = env.get("container") or {}
    if not box.get("runtime") or nvml.get("available") is not False:
        return None
    if nvml.get("reason") != "no_driver" or box.get("nvidia_devices"):
        return None
    return Diagnosis(
        f"this {box['runtime']} container was started without GPU access: it has no "
        f"/dev/nvidia* devices and no NVIDIA driver library (NVML: {nvml.get('error')})",
        f"start it again with GPU access: {box.get('gpu_flag') or 'the runtime GPU flag'}; "
        "the host needs the NVIDIA driver (check `nvidia-smi` there)",
    )


# PyTorch (torch/csrc/cuda, since 1.x): "The NVIDIA driver on your system is too old (found
# version 12080)". The number is the CUDA version the driver supports (cudaDriverGetVersion).
_TORCH_DRIVER_TOO_OLD = re.compile(r"driver on your system is too old \(found version (\d+)\)")


def driver_cuda_from_error(init_error: str | None) -> str | None:
    """The driver's CUDA version ("12.8") from PyTorch's driver-too-old error, if it is one."""
    found = _TORCH_DRIVER_TOO_OLD.search(init_error or "")
    if not found:
        return None
    code = int(found.group(1))
    return f"{code // 1000}.{code % 1000 // 10}"


def driver_too_old(
    nvml: dict[str, Any], build_cuda: str | None, init_error: str | None = None
) -> Diagnosis | None:
    need = _major(build_cuda)
    from_error = driver_cuda_from_error(init_error)
    have = nvml.get("cuda_driver_version") or from_error
    too_old = need is not None and _major(have) is not None and _major(have) < need
    if from_error or (init_error and "driver version is insufficient" in init_error):
        too_old = True  # the framework's own verdict (minor versions count too)
    if not too_old:
        return None
    driver = nvml.get("driver_version")
    return Diagnosis(
        f"the NVIDIA driver {driver + ' ' if driver else ''}supports CUDA {have or '?'}, "
        f"but the framework was built with CUDA {build_cuda}",
        f"upgrade the driver to >= {MIN_DRIVER.get(need, '?')} (CUDA {need}), or use an "
        f"environment built for the driver's CUDA ({_env_for(have)}); {DOCTOR_HINT}",
    )


def _env_for(cuda_version: str | None) -> str:
    major = _major(cuda_version)
    ok = [env for m, env in PIXI_ENV_FOR_MAJOR.items() if major is not None and m <= major]
    return f"pixi run --locked -e {ok[-1]} verify" if ok else "the cpu environment"


def gpu_busy(nvml: dict[str, Any], init_error: str | None) -> Diagnosis | None:
    busy = [
        g
        for g in nvml.get("gpus", [])
        if g.get("compute_mode") in ("exclusive_process", "prohibited")
        and (g.get("processes") or g["compute_mode"] == "prohibited")
    ]
    if busy or (init_error and "busy or unavailable" in init_error):
        names = ", ".join(f"GPU {g['index']} ({g['compute_mode']})" for g in busy) or "the GPU"
        return Diagnosis(
            f"{names} is in exclusive-process or prohibited compute mode and already taken "
            "(all CUDA-capable devices are busy or unavailable)",
            "wait for the other process to finish, pick a free GPU with CUDA_VISIBLE_DEVICES, "
            "or ask an admin to run `nvidia-smi -c DEFAULT`",
        )
    return None


def cpu_build(
    framework: str, version: str, build: str | None, profile_hint: str, profile: str
) -> Diagnosis:
    label = "PyTorch" if framework == "torch" else "TensorFlow"
    pkg = "pytorch" if framework == "torch" else "tensorflow"
    installed = f" (conda build {build})" if build else ""
    return Diagnosis(
        f"{label} {version} is a CPU-only build{installed}; the {profile} profile needs a CUDA "
        "build, so it would silently run on the CPU",
        f"install a CUDA build: `pixi install --locked -e {profile}` (conda-forge {pkg} build "
        f"{profile_hint}, or the {pkg}-gpu metapackage) instead of {pkg}-cpu",
    )


def wrong_cuda_major(
    framework: str, build_cuda: str, profile_major: int, profile: str, hint: str
) -> Diagnosis | None:
    if _major(build_cuda) == profile_major:
        return None
    label = "PyTorch" if framework == "torch" else "TensorFlow"
    return Diagnosis(
        f"{label} was built with CUDA {build_cuda} but the {profile} profile expects CUDA "
        f"{profile_major}",
        f"reinstall the {profile} environment from the lock "
        f"(`pixi install --locked -e {profile}`; builds {hint}) or verify with the matching "
        "profile (--expect)",
    )


def cudnn_version(value: Any) -> tuple[int, int, int] | None:
    """cuDNN as (major, minor, patch), from torch's tuple/list (9, 13, 0) or int (91300).

    torch gives the compiled and loaded versions as tuples but ``cudnn.version()`` as an int:
    cuDNN 9 encodes 9.13.0 as 91300 (major*10000), cuDNN 8 and older 8.9.7 as 8907 (*1000).
    """
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        parts = [int(p) for p in value[:3]]
        return (parts + [0])[0], parts[1], (parts + [0, 0])[2]
    if isinstance(value, int) and value > 0:
        if value >= 90000:
            return value // 10000, value % 10000 // 100, value % 100
        return value // 1000, value % 1000 // 100, value % 100
    return None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def cudnn_compatible(compiled: tuple[int, int, int], loaded: tuple[int, int, int]) -> bool:
    """torch's own rule (torch/backends/cudnn): the same major; from cuDNN 7 on a loaded minor
    at least the compiled one (minor releases are backward compatible), before 7 the same."""
    if loaded[0] != compiled[0]:
        return False
    if loaded[0] < 7:
        return loaded[1] == compiled[1]
    return loaded[1] >= compiled[1]


CUDNN_SHADOW_FIX = (
    "a cuDNN from outside the env (LD_LIBRARY_PATH or the system) is shadowing the env's: "
    "unset LD_LIBRARY_PATH, or reinstall the env from the lock"
)


def cudnn_mismatch(compiled: Any, loaded: Any, error: str | None = None) -> Diagnosis | None:
    """The loaded cuDNN cannot serve the build: torch refused it (``error``), or by torch's rule."""
    if error:
        if "SM < 7.5" in error:
            fix = (
                "cuDNN >= 9.11 supports Turing (sm_75) and newer GPUs only: use a build with "
                "cuDNN 9.10 (the cuda12 env) on this GPU"
            )
        else:
            fix = CUDNN_SHADOW_FIX
        return Diagnosis(f"PyTorch refuses the cuDNN it loads: {error.splitlines()[0]}", fix)
    c, r = cudnn_version(compiled), cudnn_version(loaded)
    if c is None or r is None or cudnn_compatible(c, r):
        return None
    return Diagnosis(
        f"PyTorch was compiled against cuDNN {_dotted(c)} but loads cuDNN {_dotted(r)}, which "
        "it cannot use (it needs the same major and at least the compiled minor)",
        CUDNN_SHADOW_FIX,
    )


def arch_missing(devices: list[dict[str, Any]], arch_list: list[str]) -> Diagnosis | None:
    if not arch_list:
        return None
    missing = []
    for dev in devices:
        cc = dev.get("compute_capability")
        # CUDA's rules (gpuarch): same-major cubins, family targets, `a` exact, PTX forward.
        if cc and runs_on(arch_list, cc) is None:
            missing.append(f"GPU {dev.get('index')} {dev.get('name')} ({sm_name(cc)})")
    if not missing:
        return None
    return Diagnosis(
        f"{', '.join(missing)} is not in the build's architecture list ({' '.join(arch_list)})",
        "use a build that supports this GPU: older GPUs need an older CUDA line (CUDA 13 "
        "supports sm_75 and newer only; try -e cuda12), newer GPUs a newer build; "
        f"{DOCTOR_HINT}",
    )


# TF's dso_loader (VLOG 1): "Could not load dynamic library 'libcudnn.so.9'; dlerror: <why>"
_TF_DLOPEN_FAILED = re.compile(r"Could not load dynamic library '([^']+)'; dlerror: ([^;\n]*)")


def tf_gpu_libs_missing(stderr: str) -> Diagnosis | None:
    """TF found no GPU because it could not dlopen CUDA/cuDNN: name the libraries and why."""
    failed = dict(_TF_DLOPEN_FAILED.findall(stderr or ""))  # library -> dlerror, in order
    if not failed and "Cannot dlopen some GPU libraries" not in (stderr or ""):
        return None
    if failed:
        detail = "; ".join(f"{lib} ({why.strip()[:120]})" for lib, why in failed.items())
    else:
        detail = "TensorFlow did not name them (they are logged at verbose level 1 only)"
    if any(lib.startswith(("libcuda.so", "nvcuda")) for lib in failed):
        fix = (
            "libcuda is the NVIDIA driver's own library: install the driver, or start the "
            "container with GPU access (--gpus all); check `nvidia-smi`"
        )
    else:
        fix = (
            "reinstall the env from the lock (`pixi install --locked -e cuda12`) and unset "
            "LD_LIBRARY_PATH; TensorFlow then falls back to the CPU without an error"
        )
    return Diagnosis(f"TensorFlow could not load its GPU libraries: {detail}", fix)


def shadowing(env: dict[str, Any]) -> Diagnosis | None:
    found = env.get("shadowing") or []
    if not found:
        return None
    where = "; ".join(f"{f['path']} ({', '.join(f['libraries'][:3])})" for f in found)
    return Diagnosis(
        f"LD_LIBRARY_PATH puts CUDA/cuDNN libraries from outside the env first: {where}",
        "unset LD_LIBRARY_PATH (or remove those entries) before running in the env; the env "
        "ships its own CUDA libraries",
    )


OOM_FIX = (
    "free the GPU (other processes), use a smaller batch, gradient accumulation, or mixed "
    "precision; for TF set TF_FORCE_GPU_ALLOW_GROWTH=true"
)


def out_of_memory(error: str | None) -> Diagnosis | None:
    # cuBLAS/cuDNN report a failed allocation at handle creation as *_STATUS_ALLOC_FAILED
    if error and (
        "out of memory" in error.lower()
        or "OOM" in error
        or "RESOURCE_EXHAUSTED" in error
        or "_STATUS_ALLOC_FAILED" in error
    ):
        return Diagnosis(f"the GPU ran out of memory: {error.splitlines()[0][:160]}", OOM_FIX)
    return None


# CUDA's runtime error cudaErrorAssert; torch >= 2.8 raises torch.AcceleratorError carrying it
# as .error_code (older torch: a plain RuntimeError with the same text).
CUDA_ERROR_ASSERT = 710
# cudaGetErrorString(cudaErrorAssert) as torch words it: "CUDA error: device-side assert
# triggered". Every CUDA error torch raises ends with "Compile with `TORCH_USE_CUDA_DSA` to enable
# device-side assertions.", so matching "device-side assert" alone would count any CUDA error.
_DEVICE_ASSERT = re.compile(r"device-side assert triggered", re.IGNORECASE)
# torch.AcceleratorError for cudaErrorNoKernelImageForDevice (209)
_NO_KERNEL_IMAGE = "no kernel image is available"


def device_assert_fired(error_type: Any, error: Any, error_code: Any = None) -> bool:
    """Whether what the device-assert probe caught is the device-side assert itself.

    torch.OutOfMemoryError and torch.AcceleratorError are RuntimeErrors too (torch >= 2.8): an
    error before the assert ran (out of memory, no kernel image, a broken context) is not it.
    """
    if error_type == "OutOfMemoryError" or not isinstance(error, str):
        return False
    if isinstance(error_code, int) and not isinstance(error_code, bool):
        return error_code == CUDA_ERROR_ASSERT
    return bool(_DEVICE_ASSERT.search(error))


def device_assert_blocked(
    error_type: str | None, error: str, devices: list[dict[str, Any]], arch_list: list[str]
) -> Diagnosis:
    """Why the device-assert probe failed before its assert could fire."""
    oom = out_of_memory(error)
    if oom or error_type == "OutOfMemoryError":
        return oom or Diagnosis(f"the GPU ran out of memory: {error[:160]}", OOM_FIX)
    if _NO_KERNEL_IMAGE in error:
        arch = arch_missing(devices, arch_list)
        if arch:
            return arch
        return Diagnosis(
            f"the build has no kernel for this GPU ({error[:160]})",
            "use a build whose architecture list covers the GPU; " + DOCTOR_HINT,
        )
    if "busy or unavailable" in error:
        return Diagnosis(
            f"the GPU is busy or unavailable ({error[:160]}): another process holds it in "
            "exclusive-process mode, or it is prohibited",
            "wait for the other process to finish, pick a free GPU with CUDA_VISIBLE_DEVICES, "
            "or ask an admin to run `nvidia-smi -c DEFAULT`",
        )
    return Diagnosis(
        f"the GPU failed before the assert ran ({error_type or 'error'}: {error[:160]})",
        "check `nvidia-smi` and the kernel log (`dmesg | grep -i xid`) for GPU faults; reset "
        "the GPU or reboot, then rerun",
    )


def gpu_unusable(
    ctx_env: dict[str, Any], nvml: dict[str, Any], build_cuda: str | None, init_error: str | None
) -> Diagnosis:
    """Why a CUDA build sees no GPU: the most specific known cause, else a generic one."""
    for found in (
        visible_devices_hidden(ctx_env),
        visible_devices_unmatched(ctx_env, nvml),
        container_without_gpu(ctx_env, nvml),
        no_driver(nvml),
        driver_too_old(nvml, build_cuda, init_error),
        gpu_busy(nvml, init_error),
        out_of_memory(init_error),
    ):
        if found:
            return found
    detail = f" ({init_error})" if init_error else ""
    return Diagnosis(
        f"the framework is a CUDA {build_cuda} build but sees no GPU{detail}",
        "check `nvidia-smi`, that the container was started with GPU access (--gpus all), and "
        "CUDA_VISIBLE_DEVICES",
    )


def xla_libdevice_missing(output: str, variables: dict[str, Any]) -> Diagnosis | None:
    """XLA (TensorFlow's GPU compiler) looks for CUDA's libdevice under a system CUDA path.

    XLA logs "Can't find libdevice directory ${CUDA_DIR}/nvvm/libdevice" and the step then
    fails with "libdevice not found at ./libdevice.10.bc". ``output``: the probe's stderr and
    error text; ``variables``: the environment facts' steering variables (XLA_FLAGS).
    """
    if "Can't find libdevice directory" not in output and "libdevice not found" not in output:
        return None
    flags = variables.get("XLA_FLAGS")
    now = f"XLA_FLAGS is {flags!r}" if flags else "XLA_FLAGS is unset"
    return Diagnosis(
        "XLA cannot find libdevice (nvvm/libdevice/libdevice.10.bc): it looks for a system "
        f"CUDA instead of the environment's ({now})",
        "set XLA_FLAGS=--xla_gpu_cuda_data_dir=$CONDA_PREFIX (the cuda12 pixi environment sets "
        "it on activation; export it in a conda env); if it is set, reinstall the environment "
        "from the lock so that $CONDA_PREFIX/nvvm/libdevice exists",
    )
