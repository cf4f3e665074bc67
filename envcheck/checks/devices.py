"""devices: the driver and GPUs (NVML), and what each framework sees."""

from __future__ import annotations

from .. import diagnose
from ..model import CheckResult, DeviceResult, Status, failed, passed, skipped, warned, worst
from .registry import Context, register

CAT = "devices"


@register(CAT, "gpus")
def gpus(ctx: Context) -> CheckResult:
    nvml = ctx.data("nvml")
    if not nvml.get("available") and not ctx.gpu_expected:
        return skipped(
            CAT,
            "gpus",
            f"no NVIDIA driver ({nvml.get('error')}); the {ctx.profile.name} profile needs none",
        )
    # the environment facts (is this a container?) matter only when NVML found no driver
    in_box = nvml.get("available") is False and diagnose.container_without_gpu(
        ctx.data("environment"), nvml
    )
    dx = in_box or diagnose.no_driver(nvml)
    if dx:
        if ctx.gpu_expected:
            return failed(CAT, "gpus", "no usable NVIDIA GPU", dx.cause, dx.fix)
        return skipped(CAT, "gpus", dx.cause)
    if not nvml.get("available"):
        # NVML answered nothing usable (a query failed, or no binding): no data, not a verdict
        return warned(
            CAT,
            "gpus",
            "NVML gave no data on the driver and GPUs",
            f"NVML is unavailable ({nvml.get('error')}), so the driver version and the GPUs' "
            "modes are unknown",
            "check the driver with `nvidia-smi`; the framework checks below still test the GPU",
        )
    need = ctx.profile.cuda_major
    devices = []
    for g in nvml["gpus"]:
        msg = (
            f"{g['name']} cc {g['compute_capability']}, {g['memory_total_mib']} MiB, "
            f"compute mode {g['compute_mode']}"
        )
        status = Status.PASS
        if g.get("mig_mode"):
            status, msg = Status.WARN, msg + "; MIG enabled: CUDA sees one MIG instance only"
        if g.get("compute_mode") in ("exclusive_process", "prohibited") and g.get("processes"):
            status, msg = Status.WARN, msg + f"; busy ({g['processes']} process(es))"
        devices.append(
            DeviceResult(
                f"GPU {g['index']} {g.get('uuid')}",
                status,
                msg,
                {k: g.get(k) for k in ("name", "compute_capability", "memory_total_mib", "uuid")},
            )
        )
    figures = {
        "driver_version": nvml["driver_version"],
        "cuda_driver_version": nvml["cuda_driver_version"],
        "gpu_count": len(devices),
    }
    msg = (
        f"driver {nvml['driver_version']} (supports CUDA {nvml['cuda_driver_version']}), "
        f"{len(devices)} GPU(s)"
    )
    if need:
        dx = diagnose.driver_too_old(nvml, f"{need}.0")
        if dx:
            return failed(CAT, "gpus", msg, dx.cause, dx.fix, devices=devices, figures=figures)
    status = worst([d.status for d in devices])
    if status is Status.WARN:
        return warned(
            CAT,
            "gpus",
            msg,
            "a GPU is shared or partitioned",
            "see the per-GPU messages",
            devices=devices,
            figures=figures,
        )
    return passed(CAT, "gpus", msg, devices=devices, figures=figures)


@register(CAT, "torch", framework="torch")
def torch_devices(ctx: Context) -> CheckResult:
    d = ctx.data("torch.facts")
    if not ctx.gpu_expected:
        extra = f"; {d['device_count']} GPU(s) visible too" if d.get("cuda_available") else ""
        return passed(CAT, "torch", f"CPU{extra}")
    if d.get("cuda_build") is None:
        return failed(
            CAT,
            "torch",
            "no GPU: PyTorch is a CPU-only build",
            "a CPU build never uses the GPU",
            "see build.torch for the build to install",
        )
    if not d.get("cuda_available"):
        dx = diagnose.gpu_unusable(
            ctx.data("environment"), _nvml(ctx), d["cuda_build"], d.get("init_error")
        )
        return failed(
            CAT,
            "torch",
            "GPU expected, but PyTorch sees none (it would fall back to the CPU)",
            dx.cause,
            dx.fix,
        )
    dx = diagnose.arch_missing(d["devices"], d.get("arch_list") or [])
    devices = [
        DeviceResult(
            f"cuda:{x['index']}",
            Status.PASS,
            f"{x['name']} ({x['sm']}, {x['memory_total_mib']} MiB)",
            {"compute_capability": x["compute_capability"]},
        )
        for x in d["devices"]
    ]
    if dx:
        return failed(
            CAT,
            "torch",
            "a GPU's architecture is not in the build",
            dx.cause,
            dx.fix,
            devices=devices,
        )
    return passed(CAT, "torch", f"{len(devices)} CUDA device(s)", devices=devices)


@register(CAT, "tensorflow", framework="tensorflow")
def tf_devices(ctx: Context) -> CheckResult:
    outcome = ctx.outcome("tensorflow.facts")
    d = ctx.data("tensorflow.facts")
    if not ctx.gpu_expected:
        return passed(CAT, "tensorflow", "CPU")
    if not d.get("is_cuda_build"):
        return failed(
            CAT,
            "tensorflow",
            "no GPU: TensorFlow is a CPU-only build",
            "a CPU build never uses the GPU",
            "see build.tensorflow for the build to install",
        )
    if not d["devices"]:
        dx = diagnose.tf_gpu_libs_missing(outcome.stderr) or diagnose.gpu_unusable(
            ctx.data("environment"), _nvml(ctx), str(d["build_info"].get("cuda_version")), None
        )
        return failed(
            CAT,
            "tensorflow",
            "GPU expected, but TensorFlow lists none (it silently falls back to the CPU)",
            dx.cause,
            dx.fix,
        )
    devices = [
        DeviceResult(
            f"/GPU:{x['index']}", Status.PASS, f"{x['name']} (cc {x['compute_capability']})"
        )
        for x in d["devices"]
    ]
    return passed(CAT, "tensorflow", f"{len(devices)} GPU(s)", devices=devices)


def _nvml(ctx: Context) -> dict:
    outcome = ctx.outcome("nvml")
    return outcome.data if outcome.ok else {}
