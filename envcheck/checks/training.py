"""training: MNIST trained on the device under test, to a real test-accuracy bar."""

from __future__ import annotations

from .. import diagnose
from ..model import CheckResult, DeviceResult, Status, failed, passed
from ..training import BAR_GPU_TF, BAR_GPU_TORCH, BAR_QUICK
from .kernels import gpu_ready, no_gpu_failure
from .registry import Context, ProbeFailed, register

CAT = "training"
# A GPU run trains long enough for the published accuracy; the quick/CPU run is short.
GPU_BARS = {"torch": BAR_GPU_TORCH, "tensorflow": BAR_GPU_TF}


def bar_for(ctx: Context, framework: str, gpu: bool) -> float:
    if ctx.options.min_accuracy is not None:
        return ctx.options.min_accuracy
    if ctx.options.quick or not gpu:
        return BAR_QUICK
    return GPU_BARS[framework]


def _train(ctx: Context, framework: str) -> CheckResult:
    gpu = ctx.gpu_expected
    if gpu and not gpu_ready(ctx, framework):
        return no_gpu_failure(CAT, framework, framework)
    try:
        d = ctx.data(f"{framework}.train")
    except ProbeFailed as exc:
        dx = diagnose.out_of_memory(exc.outcome.error)
        if dx:
            return failed(CAT, framework, "training ran out of GPU memory", dx.cause, dx.fix)
        output = f"{exc.outcome.stderr}\n{exc.outcome.error or ''}"
        variables = ctx.data("environment").get("variables", {})
        dx = diagnose.xla_libdevice_missing(output, variables)
        if dx:
            return failed(CAT, framework, "XLA cannot find libdevice", dx.cause, dx.fix)
        raise
    bar = bar_for(ctx, framework, gpu)
    acc = d["test_accuracy"]
    figures = {
        k: d.get(k)
        for k in (
            "test_accuracy",
            "train_seconds",
            "first_step_seconds",
            "data_load_seconds",
            "images_per_second",
            "epochs",
            "train_images",
            "device_name",
        )
    }
    to99 = d.get("time_to_99") or {}  # with and without the first step (autotuning, handles)
    figures["time_to_99_seconds"] = to99.get("seconds")
    figures["time_to_99_after_first_step_seconds"] = to99.get("seconds_after_first_step")
    figures["bar"] = bar
    mp = d.get("mixed_precision")
    if mp:
        figures["mixed_precision_accuracy"] = mp.get("test_accuracy")
    msg = (
        f"{acc:.2%} test accuracy (bar {bar:.1%}) in {d['train_seconds']:.1f} s, "
        f"{d['images_per_second']:,.0f} img/s on {d.get('device_name') or d['device']}"
    )
    dev = DeviceResult(str(d["device"]), Status.PASS if acc >= bar else Status.FAIL, msg, figures)
    if acc < bar:
        return failed(
            CAT,
            framework,
            msg,
            f"test accuracy {acc:.2%} is below the bar {bar:.1%}",
            "numerics are off on this device: check the kernels results, disable TF32 "
            "(NVIDIA_TF32_OVERRIDE=0) and rerun; report it with --json",
            devices=[dev],
            figures=figures,
        )
    if mp and mp.get("test_accuracy") is not None and mp["test_accuracy"] < bar - 0.01:
        return failed(
            CAT,
            framework,
            msg,
            f"{mp.get('dtype')} mixed precision reached only {mp['test_accuracy']:.2%}",
            "check autocast support on this GPU",
            devices=[dev],
            figures=figures,
        )
    return passed(CAT, framework, msg, devices=[dev], figures=figures)


@register(CAT, "torch", framework="torch", heavy=True)
def torch_training(ctx: Context) -> CheckResult:
    return _train(ctx, "torch")


@register(CAT, "tensorflow", framework="tensorflow", heavy=True)
def tf_training(ctx: Context) -> CheckResult:
    return _train(ctx, "tensorflow")
