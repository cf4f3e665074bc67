"""Offline audit of pixi.lock against pixi.toml, and drift of an installed env from the lock.

Public API (loaded on first use, so `import envcheck.lockaudit.cmd` stays cheap and nothing
here ever imports torch or tensorflow):

- audit(manifest_path, lock_path=None, envs=None) -> AuditResult   (needs py-rattler)
- drift_findings(lock_path, prefix, env_name=None, platform=None) -> list[Finding]
- drift_skip_reason(lock_path, prefix) -> str | None                (no py-rattler needed)
- current_env_name(prefix=None), default_lock_path(), load_manifest(path), sizes(lock, envs)
- Finding (severity, check, env, platform, package, cause, fix; .message)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "audit": "core",
    "AuditResult": "core",
    "sizes": "core",
    "human_size": "core",
    "drift_findings": "drift",
    "drift_skip_reason": "drift",
    "current_env_name": "drift",
    "default_lock_path": "drift",
    "Finding": "findings",
    "load_manifest": "manifest",
    "load_lock": "lockfile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
