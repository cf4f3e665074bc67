"""Gather facts (probes in subprocesses) and run every applicable check over them."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .checks import REGISTRY, Context, Options, ProbeFailed
from .checks.registry import PROBES, Check
from .errors import EnvcheckError, split_cause_fix
from .fileio import write_atomic
from .model import CATEGORIES, CheckResult, Report, failed, skipped
from .probes import environment
from .profiles import Profile
from .runner import ProbeOutcome, run_probe


def probe_args(ctx: Context, name: str) -> dict[str, Any]:
    gpu = ctx.gpu_expected
    if name.endswith(".kernels"):
        return {"device": ("cuda" if name.startswith("torch") else "gpu") if gpu else "cpu"}
    if name.endswith(".train"):
        return {
            "device": ("cuda" if name.startswith("torch") else "gpu") if gpu else "cpu",
            "quick": ctx.options.quick or not gpu,
            "mixed_precision": gpu,
            "data_dir": ctx.options.data_dir,
            "download": ctx.options.download,
        }
    return {}


def gather_live(ctx: Context, name: str) -> ProbeOutcome:
    if name == "environment":
        named = ctx.profile.name if ctx.profile.named else None
        return ProbeOutcome("environment", True, data=environment.gather(lock_env=named))
    spec = PROBES[name]
    return run_probe(spec.target, probe_args(ctx, name), spec.timeout * ctx.options.timeout_scale)


def gather_recorded(recorded: dict[str, ProbeOutcome]) -> Callable[[Context, str], ProbeOutcome]:
    def gather(ctx: Context, name: str) -> ProbeOutcome:
        if name in recorded:
            return recorded[name]
        return ProbeOutcome(name, False, failure="error", error="not in the recorded facts")

    return gather


def load_facts(path: Path) -> dict[str, ProbeOutcome]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {k: ProbeOutcome.from_dict(v) for k, v in raw["facts"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EnvcheckError(
            f"cannot read recorded facts {path}: {exc}; pass a file written by "
            "`envcheck verify --save-facts`",
            exit_code=2,
        ) from None


def save_facts(path: Path, ctx: Context) -> None:
    data = {
        "profile": ctx.profile.name,
        "frameworks": list(ctx.frameworks),
        "facts": {k: v.to_dict() for k, v in ctx.facts.items()},
    }
    write_atomic(path, json.dumps(data, indent=2, default=str))


def probe_failure(check: Check, exc: ProbeFailed) -> CheckResult:
    o = exc.outcome
    if o.user_error:  # e.g. MNIST missing: the message is "cause; fix"
        cause, fix = split_cause_fix(o.error or "failed")
        return failed(check.category, check.name, cause, cause, fix)
    error = o.error or ""
    if error.startswith("ModuleNotFoundError"):
        module = error.split("'")[1] if "'" in error else "a module"
        return failed(
            check.category,
            check.name,
            f"{module} is not installed",
            f"{error} (probe {exc.name})",
            "install the environment from the lock (pixi install -e <env>), or leave "
            "the framework out with --framework",
        )
    detail = f"; stderr: {o.stderr_tail.splitlines()[-1][:200]}" if o.stderr_tail else ""
    fix = {
        "timeout": "the framework hung: check `nvidia-smi` for a stuck GPU or process, then rerun",
        "signal": "the framework crashed natively: reinstall the env from the lock and unset "
        "LD_LIBRARY_PATH; rerun with --json to report it",
    }.get(
        o.failure or "",
        "reinstall the env from the lock (pixi install); rerun with --json to report it",
    )
    return failed(
        check.category,
        check.name,
        f"probe {exc.name} {o.describe_failure()}",
        f"probe {exc.name} ({o.target}) {o.describe_failure()}{detail}",
        fix,
    )


def run_checks(
    ctx: Context, checks: list[Check], on_start: Callable[[Check], None] | None = None
) -> list[CheckResult]:
    results = []
    reported: dict[str, str] = {}  # failed probe -> the check that already reported it
    for check in sorted(checks, key=lambda c: CATEGORIES.index(c.category)):
        if not check.applies(ctx):
            continue
        if on_start:
            on_start(check)
        start = time.monotonic()
        try:
            result = check.fn(ctx)
        except ProbeFailed as exc:
            if exc.name in reported:  # one failure, one report: the rest say where it is
                result = skipped(
                    check.category,
                    check.name,
                    f"not run: probe {exc.name} failed (see {reported[exc.name]})",
                )
            else:
                result = probe_failure(check, exc)
                reported[exc.name] = check.check_id
        except Exception as exc:  # a bug in one check must not hide the others
            result = failed(
                check.category,
                check.name,
                "the check itself failed",
                f"{type(exc).__name__}: {exc}",
                "report this envcheck bug with --json",
            )
        result.duration_s = time.monotonic() - start
        results.append(result)
    return results


def verify(
    profile: Profile,
    frameworks: tuple[str, ...],
    require_gpu: bool,
    options: Options,
    include_heavy: bool = True,
    recorded: dict[str, ProbeOutcome] | None = None,
    on_start: Callable[[Check], None] | None = None,
    checks: list[Check] | None = None,
) -> tuple[Report, Context]:
    gather = gather_recorded(recorded) if recorded is not None else gather_live
    ctx = Context(profile, frameworks, require_gpu, options, gather)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    start = time.monotonic()
    selected = [
        c for c in (checks if checks is not None else REGISTRY) if include_heavy or not c.heavy
    ]
    results = run_checks(ctx, selected, on_start)
    env = ctx.outcome("environment")
    report = Report(
        profile=profile.name,
        frameworks=list(frameworks),
        require_gpu=require_gpu,
        environment=env.data if env.ok else {},
        checks=results,
        envcheck_version=__version__,
        started_at=started,
        duration_s=time.monotonic() - start,
    )
    return report, ctx
