"""Gather facts (probes in subprocesses) and run every applicable check over them."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

from . import __version__, diagnose
from .checks import REGISTRY, Context, Options, ProbeFailed
from .checks.registry import PROBES, Check
from .errors import EnvcheckError, split_cause_fix
from .fixes import fit_fixes
from .guard import finite, load_file, plain, write_output
from .model import CATEGORIES, CheckResult, Report, failed, not_run_message, skipped
from .probehost import LiveHost, ReplayHost
from .profiles import (
    FRAMEWORKS_ENV,
    KNOWN_FRAMEWORKS,
    PROFILES,
    Profile,
    infer_profile,
    resolve_frameworks,
)
from .rootcause import group_follow_ons
from .runner import NOT_RECORDED, ProbeOutcome


def gather_with(host: Any) -> Callable[[Context, str], ProbeOutcome]:
    """Gather through a probe host (live or replay); the spec says where the probe runs."""

    def gather(ctx: Context, name: str) -> ProbeOutcome:
        spec = PROBES[name]
        return host.call(name, spec, spec.build_args(ctx), spec.timeout * ctx.options.timeout_scale)

    return gather


def gather_live(ctx: Context, name: str) -> ProbeOutcome:
    """One probe in a process of its own (``envcheck info``: a few cheap probes, no workers)."""
    host = LiveHost(shared=False)
    try:
        return gather_with(host)(ctx, name)
    finally:
        host.close()


def gather_recorded(recorded: dict[str, ProbeOutcome]) -> Callable[[Context, str], ProbeOutcome]:
    return gather_with(ReplayHost(recorded))


# Probes that start while the first checks run: cheap gatherers overlap the framework import.
EARLY = ("environment", "nvml", "science")
# TensorFlow and PyTorch train side by side only on a CPU run with cores enough for both
# (never on a GPU, whose memory they would fight over).
SIDE_BY_SIDE_MIN_CORES = 8
# On a CPU run torchrun and its ranks (mostly single-threaded framework imports) start with
# the torch worker's own import instead of after its training; never on a GPU (the ranks
# would share it with the training).
DISTRIBUTED_EARLY_MIN_CORES = 2


def start_early(ctx: Context, host: LiveHost, checks: list[Check], heavy: bool = True) -> None:
    """Start the probes every verify needs in the background, each framework's facts first
    (its worker imports the framework while the cheap gatherers run). ``heavy``: also what
    depends on the profile (it is False while the profile is still to be inferred)."""
    # a framework that is not installed is left to its facts probe, run when a check asks
    wanted = {c.framework for c in checks}
    installed = [
        fw for fw in ctx.frameworks if fw in KNOWN_FRAMEWORKS and fw in wanted and find_spec(fw)
    ]
    names = [f"{fw}.facts" for fw in installed]
    names += list(EARLY)
    cores = os.cpu_count() or 1
    cpu_run = not ctx.gpu_expected
    distributed = any(c.category == "distributed" for c in checks) and "torch" in installed
    if heavy and cpu_run and distributed and cores >= DISTRIBUTED_EARLY_MIN_CORES:
        names.append("torch.distributed")
    if heavy and cpu_run and len(installed) > 1 and cores >= SIDE_BY_SIDE_MIN_CORES:
        # each framework's training in its own worker at once
        names += [
            f"{c.framework}.train"
            for c in checks
            if c.category == "training" and c.framework in installed
        ]
    for name in names:
        if name in PROBES and name not in ctx.facts and name not in ctx.pending:
            spec = PROBES[name]
            timeout = spec.timeout * ctx.options.timeout_scale
            ctx.pending[name] = host.submit(name, spec, spec.build_args(ctx), timeout)


# A facts file holds a few probes' JSON and stderr tails: kilobytes, not megabytes.
MAX_FACTS_BYTES = 64 * 1024 * 1024


@dataclass
class Recording:
    """What ``--save-facts`` wrote: the facts and the selection they were gathered for."""

    facts: dict[str, ProbeOutcome]
    profile: str | None
    frameworks: tuple[str, ...] | None
    require_gpu: bool
    no_training: bool = False  # saved by a verify --no-training: holds no training run


def load_recording(path: Path) -> Recording:
    """Read and shape-check a facts file; every problem is one line, exit 2."""
    from .shapes import ShapeError, check_recording

    fix = "pass a file written by `envcheck verify --save-facts`"
    raw = load_file(path, "json", MAX_FACTS_BYTES, "recorded facts", fix, exit_code=2)
    try:
        check_recording(raw)
    except ShapeError as exc:
        raise EnvcheckError(
            f"recorded facts {path}: {plain(str(exc))}; {fix}", exit_code=2
        ) from None
    facts = {k: ProbeOutcome.from_dict(v) for k, v in raw["facts"].items()}
    frameworks = raw.get("frameworks")
    return Recording(
        facts,
        raw.get("profile"),
        tuple(frameworks) if frameworks else None,
        bool(raw.get("require_gpu", False)),
        raw.get("no_training") is True,
    )


def save_facts(path: Path, ctx: Context, no_training: bool = False) -> None:
    data = {
        "profile": ctx.profile.name,
        "frameworks": list(ctx.frameworks),
        "require_gpu": ctx.require_gpu,
        "no_training": no_training,
        "facts": {k: v.to_dict() for k, v in ctx.facts.items()},
    }
    write_output(path, json.dumps(finite(data), indent=2, default=str), "--save-facts")


def probe_failure(check: Check, exc: ProbeFailed) -> CheckResult:
    o = exc.outcome
    if o.error == NOT_RECORDED and not o.ok:  # a gap in a replayed recording, not a broken env
        cause = f"the recorded facts hold no {exc.name} run"
        return failed(
            check.category,
            check.name,
            cause,
            f"{cause} (saved with --no-training, or before this check existed)",
            "replay with --no-training, or record the facts again with --save-facts",
        )
    if o.user_error:  # e.g. MNIST missing: the message is "cause; fix"
        cause, fix = split_cause_fix(o.error or "failed")
        return failed(check.category, check.name, cause, cause, fix)
    error = o.error or ""
    oom = diagnose.out_of_memory(error)
    if oom:  # any probe that touches the GPU can be the first to find it full
        message = f"probe {exc.name} ran out of GPU memory"
        return failed(check.category, check.name, message, oom.cause, oom.fix)
    if error.startswith("ModuleNotFoundError"):
        module = error.split("'")[1] if "'" in error else "a module"
        return failed(
            check.category,
            check.name,
            f"{module} is not installed",
            f"{error} (probe {exc.name})",
            "install the environment from the lock (pixi install --locked -e <env>), or leave "
            "the framework out with --framework",
        )
    detail = f"; stderr: {o.stderr_tail.splitlines()[-1][:200]}" if o.stderr_tail else ""
    fix = {
        "timeout": "the framework hung: check `nvidia-smi` for a stuck GPU or process, then rerun",
        "signal": "the framework crashed natively: reinstall the env from the lock and unset "
        "LD_LIBRARY_PATH; rerun with --json to report it",
    }.get(
        o.failure or "",
        "reinstall the env from the lock (pixi install --locked); rerun with --json to report it",
    )
    return failed(
        check.category,
        check.name,
        f"probe {exc.name} {o.describe_failure()}",
        f"probe {exc.name} ({o.target}) {o.describe_failure()}{detail}",
        fix,
    )


def cuda_build_of(framework: str, facts: dict[str, Any]) -> str | None:
    """The CUDA version a framework was built with, from its facts probe (None: CPU build)."""
    if framework == "torch":
        return facts.get("cuda_build")
    if facts.get("is_cuda_build"):
        return str(facts.get("build_info", {}).get("cuda_version") or "") or None
    return None


def infer_into(ctx: Context, framework_option: str | None, live: bool) -> None:
    """No profile named: take it from the installed builds' CUDA line (their facts probes,
    which the checks read anyway). Frameworks, unless named, are the profile's installed ones."""
    candidates = resolve_frameworks(framework_option, PROFILES["cpu"])
    # live: a framework that is not installed is left out without starting a probe for it
    installed = [fw for fw in candidates if not live or importlib.util.find_spec(fw)]
    builds = {}
    for fw in installed:
        outcome = ctx.outcome(f"{fw}.facts")
        if outcome.ok:
            builds[fw] = cuda_build_of(fw, outcome.data)
    profile, why = infer_profile(builds)
    ctx.profile = profile
    frameworks = resolve_frameworks(framework_option, profile)
    if not (framework_option or os.environ.get(FRAMEWORKS_ENV)):
        frameworks = tuple(fw for fw in frameworks if fw in builds) or frameworks
    ctx.frameworks = frameworks
    ctx.profile_source = f"inferred: {why}"


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
                    not_run_message(f"probe {exc.name} failed (see {reported[exc.name]})"),
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
    profile_source: str = "",
    framework_option: str | None = None,
) -> tuple[Report, Context]:
    """Run the checks. ``profile_source`` "infer" (no --expect, no $ENVCHECK_PROFILE) takes the
    profile from the installed builds; ``framework_option`` is --framework as given."""
    host = ReplayHost(recorded) if recorded is not None else LiveHost()
    ctx = Context(
        profile, frameworks, require_gpu, options, gather_with(host), profile_source=profile_source
    )
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    start = time.monotonic()
    selected = [
        c for c in (checks if checks is not None else REGISTRY) if include_heavy or not c.heavy
    ]
    try:
        if recorded is None:
            start_early(ctx, host, selected, heavy=profile_source != "infer")
        if profile_source == "infer":
            infer_into(ctx, framework_option, live=recorded is None)
            if recorded is None:  # the inferred profile may add a framework
                start_early(ctx, host, selected)
        results = group_follow_ons(run_checks(ctx, selected, on_start))
        env = ctx.outcome("environment")
        # pixi commands in fixes -> this install's (pip, conda)
        fit_fixes(results, env.data if env.ok else {})
        host.close()  # workers end; a Ctrl-C while they do still aborts below
    except BaseException:  # Ctrl-C, SIGTERM: every child ends, every temp folder goes
        host.abort()
        raise
    report = Report(
        profile=ctx.profile.name,
        frameworks=list(ctx.frameworks),
        require_gpu=require_gpu,
        environment=env.data if env.ok else {},
        checks=results,
        envcheck_version=__version__,
        started_at=started,
        duration_s=time.monotonic() - start,
        probes=probe_summary(ctx.facts),
        notes=list(host.notes),
    )
    return report, ctx


def probe_summary(facts: dict[str, ProbeOutcome]) -> dict[str, dict[str, Any]]:
    """Per probe: where it ran, its seconds and their split, and notes (for --json)."""
    return {
        name: {
            "ok": o.ok,
            "isolation": o.isolation,
            "seconds": round(o.seconds, 3),
            "timing": {k: round(v, 3) for k, v in o.timing.items()},
            "notes": list(o.notes),
        }
        for name, o in sorted(facts.items())
    }
