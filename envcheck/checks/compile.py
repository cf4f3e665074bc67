"""compile: torch.compile (Inductor, Triton on a GPU) and XLA (jit_compile=True) on the device
under test, checked against the uncompiled result, with the toolchain they found."""

from __future__ import annotations

from typing import Any

from .. import diagnose
from ..diagnose import Diagnosis
from ..diagnose_compile import (
    cache_noexec,
    cache_not_writable,
    compile_timeout,
    no_compiler,
    not_a_compiler,
    ptxas_too_new,
    triton_problem,
)
from ..model import (
    CheckResult,
    DeviceResult,
    Status,
    failed,
    not_run_message,
    passed,
    skipped,
    warned,
)
from ..runner import NOT_RECORDED
from .kernels import gpu_ready, no_gpu_failure
from .registry import Context, ProbeFailed, register

CAT = "compile"
# conda-forge has no Triton for PyTorch 2.0 cuda118, nor for Windows: torch.compile cannot use
# the GPU there, which the env cannot fix (a WARN, not a FAIL).
NO_TRITON_PROFILES = ("cuda11",)


def _no_triton_here(ctx: Context) -> str | None:
    """Why this env cannot have Triton, or None where it should."""
    if ctx.profile.name in NO_TRITON_PROFILES:
        return f"conda-forge has no Triton for this PyTorch build ({ctx.profile.name})"
    env = ctx.outcome("environment")
    if env.ok and (env.data.get("platform") or {}).get("system") == "Windows":
        return "conda-forge has no Triton for Windows"
    return None


def _driver_cuda(ctx: Context) -> str | None:
    o = ctx.outcome("nvml")
    return o.data.get("cuda_driver_version") if o.ok else None


def _probe_failed(exc: ProbeFailed, what: str) -> CheckResult | None:
    """The compile probe's own failures that have a better verdict than the generic one."""
    if not exc.name.endswith(".compile"):
        return None
    if exc.outcome.error == NOT_RECORDED:  # facts saved before the compile checks existed
        return skipped(
            CAT, exc.name.split(".")[0], not_run_message(f"{exc.name} is not in the facts")
        )
    if exc.outcome.failure != "timeout":
        return None
    dx = compile_timeout(what, exc.outcome.seconds)
    return failed(CAT, exc.name.split(".")[0], f"{what} timed out", dx.cause, dx.fix)


def _first_line(error: str) -> str:
    return (error.strip().splitlines() or ["failed"])[0][:200]


def toolchain_figures(tc: dict[str, Any]) -> dict[str, Any]:
    """Which compilers, Triton and ptxas the stack found: path and version."""
    figures: dict[str, Any] = {}
    for lang in ("c", "cxx"):
        fact = tc.get(lang) or {}
        figures[f"{lang}_compiler"] = fact.get("path")
        figures[f"{lang}_compiler_version"] = fact.get("version")
    figures["triton_version"] = (tc.get("triton") or {}).get("version")
    figures["ptxas_version"] = (tc.get("ptxas") or {}).get("cuda")
    return figures


def _torch_figures(d: dict[str, Any]) -> dict[str, Any]:
    figures = {
        k: d.get(k)
        for k in (
            "cold_seconds",
            "warm_seconds",
            "eager_step_ms",
            "compiled_step_ms",
            "speedup",
            "max_rel_error",
            "tolerance",
        )
        if d.get(k) is not None
    }
    figures.update(toolchain_figures(d.get("toolchain") or {}))
    cache = d.get("cache") or {}
    figures["inductor_cache_dir"] = (cache.get("TORCHINDUCTOR_CACHE_DIR") or {}).get("path")
    return figures


def _torch_failure(ctx: Context, d: dict[str, Any], device: str) -> CheckResult:
    tc, error = d.get("toolchain") or {}, d.get("error") or ""
    figures = _torch_figures(d)
    found = [
        cache_not_writable(d.get("cache") or {}, error),
        cache_noexec(d.get("cache") or {}, error),
        not_a_compiler(tc, device),
        no_compiler(tc, device, error),
    ]
    if device == "cuda":
        missing_triton = not (tc.get("triton") or {}).get("installed")
        why = _no_triton_here(ctx) if missing_triton else None
        if why:
            return warned(
                CAT,
                "torch",
                "torch.compile cannot use the GPU: Triton is not installed",
                f"{why}; torch.compile failed: {d.get('error_root') or _first_line(error)}",
                "use eager mode here; for torch.compile on the GPU use a linux env with Triton "
                "(torch-cuda12, cuda13)",
                figures=figures,
            )
        found += [
            triton_problem(tc, ctx.profile.name),
            ptxas_too_new(error, tc.get("ptxas") or {}, _driver_cuda(ctx)),
        ]
    dx = next((f for f in found if f), None) or diagnose.out_of_memory(error)
    if dx is None:
        dx = Diagnosis(
            f"torch.compile failed: {d.get('error_root') or _first_line(error)}",
            "rerun with --json and report it (TORCHDYNAMO_VERBOSE=1 shows PyTorch's stack)",
        )
    message = f"torch.compile failed on {device}: {d.get('error_root') or _first_line(error)}"
    return failed(CAT, "torch", message, dx.cause, dx.fix, figures=figures)


@register(CAT, "torch", framework="torch", heavy=True)
def torch_compile(ctx: Context) -> CheckResult:
    gpu = ctx.gpu_expected
    if gpu and not gpu_ready(ctx, "torch"):
        return no_gpu_failure(CAT, "torch", "torch")
    device = "cuda" if gpu else "cpu"
    try:
        d = ctx.data("torch.compile")
    except ProbeFailed as exc:
        verdict = _probe_failed(exc, "torch.compile of the test model")
        if verdict:
            return verdict
        raise
    if not d.get("compiled"):
        return _torch_failure(ctx, d, device)
    figures = _torch_figures(d)
    tc = d.get("toolchain") or {}
    err, tol = d["max_rel_error"], d["tolerance"]
    named = ((d.get("cache") or {}).get("TORCHINDUCTOR_CACHE_DIR") or {}).get("named")
    # a cache folder the user named may already hold these kernels: then it is not "cold"
    first = "first (TORCHINDUCTOR_CACHE_DIR set: may be warm)" if named else "cold"
    msg = (
        f"forward+backward match eager (max rel. error {err:.1e} <= {tol:.0e}); compile "
        f"{d['cold_seconds']:.1f} s {first}, {d['warm_seconds']:.1f} s again from the cache; "
        f"step {d['compiled_step_ms']:.1f} ms compiled vs {d['eager_step_ms']:.1f} ms eager"
    )
    dev_name = str(d.get("device_name") or d.get("device") or device)
    if err > tol:
        bad = f"compiled results differ from eager: max rel. error {err:.1e} > {tol:.0e}"
        return failed(
            CAT,
            "torch",
            bad,
            f"Inductor's kernels compute different values than eager on {dev_name}",
            "disable TF32 (NVIDIA_TF32_OVERRIDE=0) and rerun; report it with --json",
            devices=[DeviceResult(dev_name, Status.FAIL, bad, figures)],
            figures=figures,
        )
    dx = not_a_compiler(tc, device)
    if dx:  # this model compiled without it, but Triton and extension builds use CC/CXX
        broken = f"compiled, but {dx.cause.split(':')[0]}"
        return failed(CAT, "torch", broken, dx.cause, dx.fix, figures=figures)
    dx = triton_problem(tc, ctx.profile.name) if gpu else None
    if dx:  # compiled with a Triton the build was not made for
        return warned(CAT, "torch", msg, dx.cause, dx.fix, figures=figures)
    dev = DeviceResult(dev_name, Status.PASS, msg, figures)
    return passed(CAT, "torch", msg, devices=[dev], figures=figures)


@register(CAT, "tensorflow", framework="tensorflow", heavy=True)
def tf_compile(ctx: Context) -> CheckResult:
    gpu = ctx.gpu_expected
    if gpu and not gpu_ready(ctx, "tensorflow"):
        return no_gpu_failure(CAT, "tensorflow", "tensorflow")
    try:
        d = ctx.data("tensorflow.compile")
    except ProbeFailed as exc:
        verdict = _probe_failed(exc, "XLA (jit_compile=True) of the test function")
        if verdict:
            return verdict
        variables = ctx.data("environment").get("variables", {})
        output = f"{exc.outcome.stderr}\n{exc.outcome.error or ''}"
        dx = diagnose.xla_libdevice_missing(output, variables)
        if dx:
            return failed(CAT, "tensorflow", "XLA cannot find libdevice", dx.cause, dx.fix)
        raise
    figures = {
        k: d.get(k)
        for k in ("compile_seconds", "step_ms", "plain_step_ms", "max_rel_error", "tolerance")
        if d.get(k) is not None
    }
    if not d.get("compiled"):
        error = d.get("error") or ""
        variables = ctx.data("environment").get("variables", {})
        dx = diagnose.xla_libdevice_missing(error, variables) or (
            ptxas_too_new(error, {}, _driver_cuda(ctx)) if gpu else None
        )
        if dx is None:
            dx = diagnose.out_of_memory(error) or Diagnosis(
                f"XLA failed: {_first_line(error)}",
                "rerun with --json and report it; TF_CPP_MIN_LOG_LEVEL=0 shows XLA's log",
            )
        message = f"XLA (jit_compile=True) failed: {d.get('error_root') or _first_line(error)}"
        return failed(CAT, "tensorflow", message, dx.cause, dx.fix, figures=figures)
    err, tol = d["max_rel_error"], d["tolerance"]
    msg = (
        f"jit_compile=True matches the uncompiled function (rel. error {err:.1e} <= {tol:.0e}); "
        f"compile {d['compile_seconds']:.2f} s; step {d['step_ms']:.2f} ms vs "
        f"{d.get('plain_step_ms', 0):.2f} ms uncompiled"
    )
    if err > tol:
        bad = f"XLA results differ from the uncompiled function: rel. error {err:.1e} > {tol:.0e}"
        return failed(
            CAT,
            "tensorflow",
            bad,
            "XLA's compiled kernels compute different values on this device",
            "disable TF32 (NVIDIA_TF32_OVERRIDE=0) and rerun; report it with --json",
            figures=figures,
        )
    dev = DeviceResult(str(d.get("device") or "cpu"), Status.PASS, msg, figures)
    return passed(CAT, "tensorflow", msg, devices=[dev], figures=figures)
