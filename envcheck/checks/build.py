"""build: what each framework was built with versus what it loads."""

from __future__ import annotations

from .. import diagnose
from ..model import CheckResult, failed, passed, warned
from .registry import Context, register

CAT = "build"


def _conda_build(ctx: Context, *names: str) -> str | None:
    pkgs = ctx.data("environment").get("conda_packages", {})
    for name in names:
        if name in pkgs:
            return pkgs[name]["build"]
    return None


@register(CAT, "torch", framework="torch")
def torch_build(ctx: Context) -> CheckResult:
    d = ctx.data("torch.facts")
    cuda = d.get("cuda_build")
    figures = {
        k: d.get(k)
        for k in (
            "version",
            "cuda_build",
            "cudnn_compile",
            "cudnn_loaded",
            "cudnn_runtime",
            "cudnn_error",
            "nccl",
            "arch_list",
        )
    }
    if cuda is None:
        if ctx.gpu_expected:
            dx = diagnose.cpu_build(
                "torch",
                d["version"],
                _conda_build(ctx, "pytorch", "libtorch"),
                ctx.profile.build_hint,
                _cuda_profile(ctx),
            )
            return failed(
                CAT, "torch", "PyTorch is a CPU-only build", dx.cause, dx.fix, figures=figures
            )
        return passed(CAT, "torch", f"PyTorch {d['version']}: CPU build", figures=figures)
    if ctx.profile.cuda_major:
        dx = diagnose.wrong_cuda_major(
            "torch", cuda, ctx.profile.cuda_major, ctx.profile.name, ctx.profile.build_hint
        )
        if dx:
            return failed(
                CAT, "torch", f"PyTorch built with CUDA {cuda}", dx.cause, dx.fix, figures=figures
            )
    # compiled and loaded as torch gives them (tuples); facts without "cudnn_loaded" have the int
    loaded = d.get("cudnn_loaded") or d.get("cudnn_runtime")
    dx = diagnose.cudnn_mismatch(d.get("cudnn_compile"), loaded, d.get("cudnn_error"))
    if dx:
        return failed(
            CAT,
            "torch",
            "cuDNN loaded differs from cuDNN compiled",
            dx.cause,
            dx.fix,
            figures=figures,
        )
    msg = (
        f"PyTorch {d['version']}: CUDA {cuda}, cuDNN {_cudnn_text(loaded)}, "
        f"NCCL {d.get('nccl')}, archs {' '.join(d.get('arch_list') or [])}"
    )
    if not ctx.gpu_expected:
        return warned(
            CAT,
            "torch",
            msg,
            "a CUDA build in the cpu profile",
            "use the cpu environment's lock (pixi install --locked -e cpu)",
            figures=figures,
        )
    return passed(CAT, "torch", msg, figures=figures)


@register(CAT, "tensorflow", framework="tensorflow")
def tf_build(ctx: Context) -> CheckResult:
    d = ctx.data("tensorflow.facts")
    info = d.get("build_info", {})
    figures = {
        "version": d["version"],
        **{
            k: info.get(k)
            for k in ("cuda_version", "cudnn_version", "cuda_compute_capabilities", "is_cuda_build")
        },
    }
    if not d.get("is_cuda_build"):
        if ctx.gpu_expected:
            dx = diagnose.cpu_build(
                "tensorflow",
                d["version"],
                _conda_build(ctx, "tensorflow-base", "tensorflow"),
                ctx.profile.build_hint,
                _cuda_profile(ctx),
            )
            return failed(
                CAT,
                "tensorflow",
                "TensorFlow is a CPU-only build",
                dx.cause,
                dx.fix,
                figures=figures,
            )
        return passed(CAT, "tensorflow", f"TensorFlow {d['version']}: CPU build", figures=figures)
    cuda = str(info.get("cuda_version"))
    if ctx.profile.cuda_major:
        dx = diagnose.wrong_cuda_major(
            "tensorflow", cuda, ctx.profile.cuda_major, ctx.profile.name, ctx.profile.build_hint
        )
        if dx:
            return failed(
                CAT,
                "tensorflow",
                f"TensorFlow built with CUDA {cuda}",
                dx.cause,
                dx.fix,
                figures=figures,
            )
    archs = info.get("cuda_compute_capabilities") or []
    return passed(
        CAT,
        "tensorflow",
        f"TensorFlow {d['version']}: CUDA {cuda}, cuDNN "
        f"{info.get('cudnn_version')}, archs {' '.join(archs)}",
        figures=figures,
    )


def _cudnn_text(version) -> str:
    parsed = diagnose.cudnn_version(version)
    return ".".join(map(str, parsed)) if parsed else "none"


def _cuda_profile(ctx: Context) -> str:
    # --require-gpu with the cpu profile still needs some CUDA environment: name the main one
    return ctx.profile.name if ctx.profile.wants_gpu else "cuda12"
