"""environment: the interpreter, the env prefix and the variables that steer CUDA."""

from __future__ import annotations

from .. import diagnose
from ..model import CheckResult, failed, passed, skipped, warned
from .registry import Context, register

CAT = "environment"


@register(CAT, "profile")
def profile(ctx: Context) -> CheckResult:
    """What this run verifies, and why: named, or inferred from the installed builds."""
    p = ctx.profile
    if p.wants_gpu:
        what = f"CUDA {p.cuda_major} builds on a GPU"
    else:
        what = "a GPU (--require-gpu)" if ctx.require_gpu else "the CPU"
    source = ctx.profile_source
    if not source.startswith("inferred"):
        source = f"from {source}" if source else "as given"
    return passed(
        CAT, "profile", f"profile {p.name}: {', '.join(ctx.frameworks)} on {what} ({source})"
    )


@register(CAT, "python")
def python(ctx: Context) -> CheckResult:
    env = ctx.data("environment")
    py = env["python"]
    msg = f"Python {py['version']} ({py['implementation']}) at {py['executable']}"
    if env.get("conda_prefix") and not env.get("python_in_prefix"):
        return warned(
            CAT,
            "python",
            msg,
            f"this Python is not the one in {env['conda_prefix']}",
            "run through the env: pixi run --locked verify (or activate the env first)",
        )
    return passed(CAT, "python", msg)


@register(CAT, "platform")
def platform_info(ctx: Context) -> CheckResult:
    p = ctx.data("environment")["platform"]
    return passed(CAT, "platform", f"{p['system']} {p['machine']} (kernel {p['release']})")


@register(CAT, "prefix")
def prefix(ctx: Context) -> CheckResult:
    env = ctx.data("environment")
    if not env.get("conda_prefix"):
        return skipped(CAT, "prefix", "not inside a conda/pixi environment (CONDA_PREFIX unset)")
    name = env.get("pixi_environment")
    label = f"pixi env {name!r}" if name else "conda env"
    return passed(CAT, "prefix", f"{label} at {env['conda_prefix']}")


@register(CAT, "ld_library_path")
def ld_library_path(ctx: Context) -> CheckResult:
    found = diagnose.shadowing(ctx.data("environment"))
    if found:
        return warned(
            CAT,
            "ld_library_path",
            "CUDA libraries outside the env shadow the env's",
            found.cause,
            found.fix,
        )
    n = len(ctx.data("environment").get("ld_library_path", []))
    return passed(CAT, "ld_library_path", f"no CUDA/cuDNN library shadows the env ({n} entries)")


@register(CAT, "cuda_visible_devices")
def cuda_visible_devices(ctx: Context) -> CheckResult:
    env = ctx.data("environment")
    found = diagnose.visible_devices_hidden(env)
    if found:
        make = failed if ctx.gpu_expected else warned
        return make(CAT, "cuda_visible_devices", "every GPU is hidden", found.cause, found.fix)
    value = env.get("variables", {}).get("CUDA_VISIBLE_DEVICES")
    return passed(
        CAT,
        "cuda_visible_devices",
        "CUDA_VISIBLE_DEVICES unset" if value is None else f"CUDA_VISIBLE_DEVICES={value}",
    )


@register(CAT, "lock_drift")
def lock_drift(ctx: Context) -> CheckResult:
    """The installed records equal pixi.lock's for this env and platform (sha256)."""
    drift = ctx.data("environment").get("lock_drift") or {"skipped": "not gathered"}
    if "skipped" in drift:
        return skipped(CAT, "lock_drift", drift["skipped"])
    findings = drift["findings"]
    # which lock environment was compared, and why (recorded facts may predate "chosen_by")
    which = f"environment {drift['env']!r}" + (
        f" ({drift['chosen_by']})" if drift.get("chosen_by") else ""
    )
    if findings:
        first = findings[0]
        return failed(
            CAT,
            "lock_drift",
            f"{len(findings)} installed package(s) differ from pixi.lock {which}",
            first["cause"],
            first["fix"],
        )
    return passed(CAT, "lock_drift", f"installed packages match pixi.lock {which}")
