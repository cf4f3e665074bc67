"""Rules that turn gathered facts into a cause and a fix.

Each rule is a pure function of plain data, so recorded facts from a broken
machine can be replayed in tests and with ``envcheck verify --replay``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Minimum NVIDIA driver per CUDA major (CUDA release notes, minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
PIXI_ENV_FOR_MAJOR = {11: "cuda11", 12: "cuda12", 13: "cuda13"}


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


def no_driver(nvml: dict[str, Any]) -> Diagnosis | None:
    if nvml.get("available") is False and nvml.get("reason") == "no_driver":
        return Diagnosis(
            f"no NVIDIA driver answers on this machine (NVML: {nvml.get('error')})",
            "run on a machine with an NVIDIA GPU and driver (check `nvidia-smi`), or use the cpu "
            "environment: pixi run -e cpu verify",
        )
    if nvml.get("available") and not nvml.get("gpus"):
        return Diagnosis(
            "the NVIDIA driver is loaded but reports no GPU",
            "check the GPU is attached to this machine/container (`nvidia-smi -L`)",
        )
    return None


def driver_too_old(
    nvml: dict[str, Any], build_cuda: str | None, init_error: str | None = None
) -> Diagnosis | None:
    need = _major(build_cuda)
    have = nvml.get("cuda_driver_version")
    too_old = need is not None and _major(have) is not None and _major(have) < need
    if init_error and "driver version is insufficient" in init_error:
        too_old = True
    if not too_old:
        return None
    return Diagnosis(
        f"the NVIDIA driver {nvml.get('driver_version', '?')} supports CUDA {have or '?'}, "
        f"but the framework was built with CUDA {build_cuda}",
        f"upgrade the driver to >= {MIN_DRIVER.get(need, '?')} (CUDA {need}), or use an "
        f"environment built for the driver's CUDA ({_env_for(have)})",
    )


def _env_for(cuda_version: str | None) -> str:
    major = _major(cuda_version)
    ok = [env for m, env in PIXI_ENV_FOR_MAJOR.items() if major is not None and m <= major]
    return f"pixi run -e {ok[-1]} verify" if ok else "the cpu environment"


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
        f"install a CUDA build: `pixi install -e {profile}` (conda-forge {pkg} build "
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
        f"reinstall the {profile} environment from the lock (`pixi install -e {profile}`; builds "
        f"{hint}) or verify with the matching profile (--expect)",
    )


def cudnn_mismatch(compile_v: int | None, runtime_v: int | None) -> Diagnosis | None:
    if not compile_v or not runtime_v or compile_v == runtime_v:
        return None
    # cuDNN encodes 9.10.2 as 91002 (9.x) or 8907 for 8.9.7
    return Diagnosis(
        f"PyTorch was compiled against cuDNN {compile_v} but loads cuDNN {runtime_v}",
        "a cuDNN from outside the env (LD_LIBRARY_PATH or the system) is shadowing the env's: "
        "unset LD_LIBRARY_PATH, or reinstall the env from the lock",
    )


def arch_missing(devices: list[dict[str, Any]], arch_list: list[str]) -> Diagnosis | None:
    if not arch_list:
        return None
    missing = []
    for dev in devices:
        cc = dev.get("compute_capability")
        if not cc:
            continue
        sm = "sm_" + cc.replace(".", "")
        ptx_ok = any(
            a.startswith("compute_") and int(a[8:].rstrip("a")) <= int(sm[3:])
            for a in arch_list
            if a[8:].rstrip("a").isdigit()
        )
        sm_ok = sm in arch_list or f"{sm}a" in arch_list
        if not sm_ok and not ptx_ok:
            missing.append(f"GPU {dev.get('index')} {dev.get('name')} ({sm})")
    if not missing:
        return None
    return Diagnosis(
        f"{', '.join(missing)} is not in the build's architecture list ({' '.join(arch_list)})",
        "use a build that supports this GPU: older GPUs need an older CUDA line (CUDA 13 "
        "supports sm_75 and newer only; try -e cuda12), newer GPUs a newer build",
    )


def tf_gpu_libs_missing(stderr: str) -> Diagnosis | None:
    if "Cannot dlopen some GPU libraries" in stderr or "Could not load dynamic library" in stderr:
        lines = [ln for ln in stderr.splitlines() if "dlopen" in ln or "dynamic library" in ln]
        detail = lines[0].strip()[-160:] if lines else ""
        return Diagnosis(
            f"TensorFlow could not load its GPU libraries (CUDA/cuDNN): {detail}",
            "reinstall the env from the lock (`pixi install -e cuda12`) and unset LD_LIBRARY_PATH;"
            " TensorFlow then falls back to the CPU without an error",
        )
    return None


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


def out_of_memory(error: str | None) -> Diagnosis | None:
    if error and (
        "out of memory" in error.lower() or "OOM" in error or "RESOURCE_EXHAUSTED" in error
    ):
        return Diagnosis(
            f"the GPU ran out of memory: {error.splitlines()[0][:160]}",
            "free the GPU (other processes), use a smaller batch (--batch-size), gradient "
            "accumulation, or mixed precision; for TF set TF_FORCE_GPU_ALLOW_GROWTH=true",
        )
    return None


def gpu_unusable(
    ctx_env: dict[str, Any], nvml: dict[str, Any], build_cuda: str | None, init_error: str | None
) -> Diagnosis:
    """Why a CUDA build sees no GPU: the most specific known cause, else a generic one."""
    for found in (
        visible_devices_hidden(ctx_env),
        no_driver(nvml),
        driver_too_old(nvml, build_cuda, init_error),
        gpu_busy(nvml, init_error),
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
