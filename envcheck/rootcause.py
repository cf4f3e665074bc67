"""Root causes: which failures follow from which, so a report leads with the one to fix first.

A CUDA profile on a machine without a driver fails devices.gpus; PyTorch then sees no GPU
(devices.torch), and kernels, the device-side assert, all-reduce and training cannot run. Eight
FAILs, one cause. Each check here declares what it needs; a failed or unrun result whose need
failed follows that need's root cause. One that did not run at all ("not run: ...") becomes
NOT_RUN, counted apart. Pure over the results: it runs the same on a live run and a replay.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from .model import CATEGORIES, NOT_RUN_PREFIX, CheckResult, Status

# What each check needs, by check-id pattern; "{fw}" stands for the check's own framework (the
# part after the dot). Order does not matter: results are walked in category order, and every
# need sits in an earlier category or earlier in the same one.
NEEDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("build.*", ("imports.{fw}",)),
    ("devices.gpus", ("environment.cuda_visible_devices",)),
    (
        "devices.*",
        ("imports.{fw}", "build.{fw}", "environment.cuda_visible_devices", "devices.gpus"),
    ),
    ("kernels.torch_device_assert", ("devices.torch",)),
    ("kernels.*", ("devices.{fw}",)),
    ("health.*", ("devices.gpus",)),
    ("compile.*", ("devices.{fw}",)),
    ("distributed.*", ("devices.torch",)),
    ("training.*", ("devices.{fw}",)),
)


def needs_of(check_id: str) -> tuple[str, ...]:
    """The check ids ``check_id`` needs (the first matching pattern wins)."""
    fw = check_id.split(".", 1)[1]
    for pattern, needs in NEEDS:
        if fnmatch.fnmatchcase(check_id, pattern):
            return tuple(n.replace("{fw}", fw) for n in needs)
    return ()


def _did_not_run(result: CheckResult) -> bool:
    return result.message.startswith(NOT_RUN_PREFIX)


def group_follow_ons(results: list[CheckResult]) -> list[CheckResult]:
    """Mark the results that follow from another failure (in place; returns ``results``).

    A FAIL (or a "not run" SKIP) whose needed check failed or did not run gets ``follows``:
    the root causes of that check. One that did not run becomes NOT_RUN; one that ran and
    failed anyway stays FAIL, grouped under its root. A result with no failed need is left as
    it is: an unexplained failure is a root cause of its own (fail closed).
    """
    by_id = {r.check_id: r for r in results}
    for r in sorted(results, key=lambda r: CATEGORIES.index(r.category)):
        bad = r.status is Status.FAIL or (r.status is Status.SKIP and _did_not_run(r))
        if not bad:
            continue
        roots: list[str] = []
        for need in needs_of(r.check_id):
            n = by_id.get(need)
            if n is None or n.status not in (Status.FAIL, Status.NOT_RUN):
                continue
            for root in n.follows or [n.check_id]:
                if root not in roots:
                    roots.append(root)
        if roots:
            r.follows = roots
            if _did_not_run(r):
                r.status = Status.NOT_RUN
    return results


@dataclass
class RootCause:
    check_id: str
    message: str
    cause: str | None
    fix: str | None
    follow_ons: list[str]  # the check ids that follow from it


def root_causes(results: list[CheckResult]) -> list[RootCause]:
    """Every failure that follows from no other, with the checks that follow from it."""
    out = []
    for r in results:
        if r.is_root:
            follow_ons = [x.check_id for x in results if r.check_id in x.follows]
            out.append(RootCause(r.check_id, r.message, r.cause_beyond_message, r.fix, follow_ons))
    return out


def summary_lines(results: list[CheckResult]) -> list[str]:
    """The few closing lines: each root cause, what follows from it, and the first fix."""
    roots = root_causes(results)
    if not roots:
        return []
    lines = []
    if len(roots) == 1:
        rc = roots[0]
        lines.append(f"root cause: {rc.check_id}: {rc.cause or rc.message}")
        if rc.follow_ons:
            lines.append(f"  followed by: {', '.join(rc.follow_ons)}")
    else:
        lines.append(f"root causes ({len(roots)}), fix them in this order:")
        for i, rc in enumerate(roots, 1):
            lines.append(f"  {i}. {rc.check_id}: {rc.cause or rc.message}")
            if rc.follow_ons:
                lines.append(f"     followed by: {', '.join(rc.follow_ons)}")
    first = next((rc for rc in roots if rc.fix), None)
    if first:
        lines.append(f"first fix ({first.check_id}): {first.fix}")
    return lines
