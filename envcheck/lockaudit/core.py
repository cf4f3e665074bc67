"""Run the whole offline audit: manifest + lock -> findings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EnvcheckError
from .aliases import align_lock
from .findings import Finding
from .lockfile import Lock, load_lock
from .manifest import Manifest, load_manifest
from .policy import check_env_name, check_policy
from .satisfiability import check_lock


@dataclass
class SizeRow:
    env: str
    platform: str
    records: int
    bytes: int
    unknown: int  # records without a size


@dataclass
class AuditResult:
    manifest: Manifest
    lock: Lock
    envs: list[str]
    findings: list[Finding]
    seconds: float  # reading both files and every check
    counts: dict[str, int] = field(default_factory=dict)  # "env/platform" -> records


def select_envs(manifest: Manifest, names: list[str] | None) -> list[str]:
    if not names:
        return list(manifest.envs)
    unknown = [n for n in names if n not in manifest.envs]
    if unknown:
        raise EnvcheckError(
            f"unknown environment {', '.join(unknown)}; {manifest.path} defines: "
            + ", ".join(manifest.envs),
            exit_code=2,
        )
    return list(dict.fromkeys(names))


def default_lock_for(manifest_path: str | Path) -> Path:
    return Path(manifest_path).parent / "pixi.lock"


def audit(
    manifest_path: str | Path, lock_path: str | Path | None = None, envs: list[str] | None = None
) -> AuditResult:
    """Satisfiability and policy findings for `envs` (default: all) of the manifest."""
    start = time.perf_counter()
    manifest = load_manifest(manifest_path)
    names = select_envs(manifest, envs)
    # pixi 0.71-0.77 name rich platforms p1, p2, ...: read them under the manifest's names.
    lock = align_lock(load_lock(lock_path or default_lock_for(manifest_path)), manifest)
    findings = check_lock(manifest, lock, names)
    counts = {}
    for name in names:
        env = manifest.envs[name]
        findings += check_env_name(name, env.platforms)
        locked = lock.envs.get(name)
        if locked is None:
            continue
        for pname, ep in env.platforms.items():
            if pname not in locked.platforms:
                continue
            records = locked.records.get(pname, [])
            counts[f"{name}/{pname}"] = len(records)
            findings += check_policy(
                name, ep, pname, locked.platforms[pname].subdir, records, locked.pypi.get(pname, [])
            )
    return AuditResult(manifest, lock, names, findings, time.perf_counter() - start, counts)


def sizes(lock: Lock, envs: list[str], manifest: Manifest | None = None) -> list[SizeRow]:
    """Download size per env x platform: the sum of the locked archives' sizes.

    Platforms come in manifest order when a manifest is given, else in lock order.
    """
    rows = []
    for name in envs:
        locked = lock.envs.get(name)
        if locked is None:
            continue
        order = list(locked.records)
        if manifest is not None and name in manifest.envs:
            declared = list(manifest.envs[name].platforms)
            order.sort(key=lambda p: declared.index(p) if p in declared else len(declared))
        for pname in order:
            records = locked.records[pname]
            known = [r.size for r in records if r.size]
            rows.append(SizeRow(name, pname, len(records), sum(known), len(records) - len(known)))
    return rows


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
