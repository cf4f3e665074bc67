"""kernels: small GPU (or CPU) kernels checked against float64 references."""

from __future__ import annotations

from typing import Any

from .. import diagnose
from ..model import CheckResult, DeviceResult, Status, failed, passed, skipped
from .registry import Context, register

CAT = "kernels"
OPS = ("matmul", "conv2d", "autocast")


def gpu_ready(ctx: Context, framework: str) -> bool:
    """Whether the framework sees a GPU (from its cheap facts probe)."""
    if framework == "torch":
        return bool(ctx.data("torch.facts").get("cuda_available"))
    return bool(ctx.data("tensorflow.facts").get("devices"))


def no_gpu_failure(cat: str, name: str, framework: str) -> CheckResult:
    return failed(
        cat,
        name,
        # literal (the troubleshooting docs quote it); starts with model.NOT_RUN_PREFIX
        "not run: GPU expected but none usable",
        "running it on the CPU would hide the broken GPU setup",
        f"fix the devices.{framework} failure first",
    )


def device_results(entries: list[dict[str, Any]]) -> list[DeviceResult]:
    out = []
    for e in entries:
        bad = [op for op in OPS if not e[op]["ok"]]
        figures = {f"{op}_rel_error": e[op]["rel_error"] for op in OPS}
        figures.update({k: round(v, 3) for k, v in e.items() if k.startswith("tflops")})
        if bad:
            msg = "; ".join(
                f"{op} rel. error {e[op]['rel_error']:.2e} > {e[op]['tolerance']:.0e}" for op in bad
            )
            out.append(DeviceResult(e["device"], Status.FAIL, msg, figures))
        else:
            rate = ", ".join(
                f"{k[7:]} {v:.2f} TFLOP/s" for k, v in e.items() if k.startswith("tflops")
            )
            tf32 = " (TF32)" if e["matmul"].get("tf32") else ""
            out.append(
                DeviceResult(
                    e["device"],
                    Status.PASS,
                    f"matmul{tf32}, conv2d, {e['autocast']['dtype']} autocast ok; {rate}",
                    figures,
                )
            )
    return out


def _kernels(ctx: Context, framework: str) -> CheckResult:
    if ctx.gpu_expected and not gpu_ready(ctx, framework):
        return no_gpu_failure(CAT, framework, framework)
    devices = device_results(ctx.data(f"{framework}.kernels")["devices"])
    bad = [d for d in devices if d.status is Status.FAIL]
    if bad:
        return failed(
            CAT,
            framework,
            f"wrong results on {', '.join(d.device for d in bad)}",
            bad[0].message,
            "the GPU or its libraries compute wrong results: run "
            "`nvidia-smi -q -d ECC,PAGE_RETIREMENT` and reinstall the env from the lock",
            devices=devices,
        )
    best = max((v for d in devices for k, v in d.figures.items() if k == "tflops_fp32"), default=0)
    return passed(
        CAT,
        framework,
        f"{len(devices)} device(s) correct",
        devices=devices,
        figures={"tflops_fp32_max": best},
    )


@register(CAT, "torch", framework="torch", heavy=True)
def torch_kernels(ctx: Context) -> CheckResult:
    return _kernels(ctx, "torch")


@register(CAT, "torch_device_assert", framework="torch", heavy=True)
def torch_device_assert(ctx: Context) -> CheckResult:
    if not gpu_ready(ctx, "torch"):
        if ctx.gpu_expected:
            return no_gpu_failure(CAT, "torch_device_assert", "torch")
        return skipped(CAT, "torch_device_assert", "no GPU: device-side asserts need CUDA")
    d = ctx.data("torch.assert")
    if d.get("raised"):
        kind, error = d.get("error_type") or "RuntimeError", str(d.get("error") or "")
        if diagnose.device_assert_fired(d.get("error_type"), error, d.get("error_code")):
            return passed(CAT, "torch_device_assert", f"a failing device-side assert raised {kind}")
        facts = ctx.data("torch.facts")
        dx = diagnose.device_assert_blocked(
            d.get("error_type"), error, facts.get("devices") or [], facts.get("arch_list") or []
        )
        return failed(
            CAT,
            "torch_device_assert",
            f"the device-side assert could not run: {kind} before it fired",
            dx.cause,
            dx.fix,
        )
    return failed(
        CAT,
        "torch_device_assert",
        "a failing device-side assert passed silently",
        "device-side errors are not reported: kernels can fail without an error",
        "reinstall the env from the lock; check the driver with `nvidia-smi`",
    )


@register(CAT, "tensorflow", framework="tensorflow", heavy=True)
def tf_kernels(ctx: Context) -> CheckResult:
    return _kernels(ctx, "tensorflow")
