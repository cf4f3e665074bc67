"""Result model, DCGM style: category -> check -> per-device result.

Plain dataclasses so that a report can be rendered, serialised and compared
without any framework loaded.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

# health follows kernels: its clock and link readings are taken while the kernels check loads
# the GPUs
CATEGORIES = (
    "environment",
    "imports",
    "build",
    "devices",
    "kernels",
    "health",
    "compile",
    "distributed",
    "training",
)


class Status(str, enum.Enum):
    PASS = "pass"
    WARN = "warn"
    SKIP = "skip"
    FAIL = "fail"
    # did not run because a check it needs failed (envcheck.rootcause): counted apart from
    # failures, and fails closed in the overall verdict
    NOT_RUN = "not_run"


@dataclass
class DeviceResult:
    """One check's outcome on one device (a GPU, or the CPU)."""

    device: str
    status: Status
    message: str
    figures: dict[str, Any] = field(default_factory=dict)
    # where devices fail or warn for different reasons (one GPU's remap pending, another's
    # failed), each names its own; the check's cause and fix are its first failing device's
    cause: str | None = None
    fix: str | None = None


@dataclass
class CheckResult:
    category: str
    name: str
    status: Status
    message: str
    cause: str | None = None
    fix: str | None = None
    duration_s: float = 0.0
    devices: list[DeviceResult] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    # the root-cause check ids this result follows from (set by envcheck.rootcause)
    follows: list[str] = field(default_factory=list)

    @property
    def check_id(self) -> str:
        return f"{self.category}.{self.name}"

    @property
    def is_root(self) -> bool:
        """A failure that follows from no other failure: a root cause of the run."""
        return self.status is Status.FAIL and not self.follows

    @property
    def cause_beyond_message(self) -> str | None:
        """The cause where it adds to the message (a user error's message is its cause)."""
        return self.cause if self.cause and self.cause != self.message else None


# A check that could not run because something it needs failed says so with this prefix
# (envcheck.rootcause reads it to count the check as NOT_RUN under its root cause).
NOT_RUN_PREFIX = "not run"


def not_run_message(why: str) -> str:
    return f"{NOT_RUN_PREFIX}: {why}"


def passed(category: str, name: str, message: str, **kw: Any) -> CheckResult:
    return CheckResult(category, name, Status.PASS, message, **kw)


def failed(category: str, name: str, message: str, cause: str, fix: str, **kw: Any) -> CheckResult:
    return CheckResult(category, name, Status.FAIL, message, cause=cause, fix=fix, **kw)


def warned(category: str, name: str, message: str, cause: str, fix: str, **kw: Any) -> CheckResult:
    return CheckResult(category, name, Status.WARN, message, cause=cause, fix=fix, **kw)


def skipped(category: str, name: str, message: str, **kw: Any) -> CheckResult:
    return CheckResult(category, name, Status.SKIP, message, **kw)


def worst(statuses: list[Status]) -> Status:
    """The overall status: FAIL > WARN > PASS; SKIP only when nothing ran at all.

    A run that passed everything it was asked to check (e.g. `--framework torch`, where the
    TensorFlow checks are skipped) is a pass, not a skip. NOT_RUN counts as FAIL: a check
    that could not run proved nothing (it fails closed).
    """
    ran = [Status.FAIL if s is Status.NOT_RUN else s for s in statuses if s is not Status.SKIP]
    if statuses and not ran:
        return Status.SKIP
    order = [Status.PASS, Status.WARN, Status.FAIL]
    return max(ran, key=order.index, default=Status.PASS)


@dataclass
class Report:
    profile: str
    frameworks: list[str]
    require_gpu: bool
    environment: dict[str, Any]
    checks: list[CheckResult]
    envcheck_version: str
    started_at: str
    duration_s: float
    # per probe: where it ran, seconds and their split (start, import, init, data, work, eval)
    probes: dict[str, Any] = field(default_factory=dict)
    # how the run went, beyond the checks (e.g. a shared worker that died and was replaced)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return worst([c.status for c in self.checks])

    @property
    def exit_code(self) -> int:
        return 1 if self.status is Status.FAIL else 0

    @property
    def root_causes(self) -> list[str]:
        """The failed checks that follow from no other failure, in report order."""
        return [c.check_id for c in self.checks if c.is_root]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for c in self.checks:
            out[c.status.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        categories = []
        for cat in CATEGORIES:
            checks = [_check_dict(c) for c in self.checks if c.category == cat]
            if checks:
                status = worst([Status(c["status"]) for c in checks]).value
                categories.append({"name": cat, "status": status, "checks": checks})
        return {
            "schema_version": 1,
            "envcheck_version": self.envcheck_version,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "profile": self.profile,
            "frameworks": self.frameworks,
            "require_gpu": self.require_gpu,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "root_causes": self.root_causes,
            "environment": self.environment,
            "categories": categories,
            "probes": self.probes,
            "notes": self.notes,
        }


def _check_dict(c: CheckResult) -> dict[str, Any]:
    d = asdict(c)
    d["id"] = c.check_id
    d["status"] = c.status.value
    d["duration_s"] = round(c.duration_s, 3)
    for dev in d["devices"]:
        dev["status"] = Status(dev["status"]).value
        for key in ("cause", "fix"):  # only where a device has its own
            if dev[key] is None:
                del dev[key]
    del d["category"]
    return d
