"""One audit finding: what is wrong, where, and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR fails `envcheck lock`; WARNING is shown but does not
    check: str  # "lock", "manifest", "satisfiability", "policy" or "drift"
    env: str
    platform: str
    package: str
    cause: str
    fix: str

    @property
    def message(self) -> str:
        """The one line a user reads: the cause, then the fix."""
        return f"{self.cause}; fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["message"] = self.message
        return d


@dataclass(frozen=True)
class Scope:
    """Where one check raises findings (check, env, platform), named once per loop."""

    check: str
    env: str = "*"
    platform: str = "*"

    def error(self, package: str, cause: str, fix: str) -> Finding:
        return Finding(ERROR, self.check, self.env, self.platform, package, cause, fix)

    def warning(self, package: str, cause: str, fix: str) -> Finding:
        return Finding(WARNING, self.check, self.env, self.platform, package, cause, fix)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
