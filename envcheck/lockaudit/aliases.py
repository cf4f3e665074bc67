"""Match the lock's platform names to the manifest's, by identity, as pixi does on load.

pixi 0.71-0.77 write named ("rich") platforms into pixi.lock as short aliases p1, p2, ...
(numbered in the manifest's declaration order of the named platforms) and, on load, rename
each locked platform to the one manifest platform with the same identity: the same subdir
and the same virtual packages apart from the subdir's defaults. A lock written that way is
as good as one with full names (pixi >= 0.78), so the audit and tools/derive.py read it
under the manifest's names. A rename is applied only when exactly one manifest platform
matches and its name is not already used by another locked platform; anything else keeps its
name, so the satisfiability check still reports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from .lockfile import Lock, LockedPlatform
from .manifest import Manifest, PlatformDecl
from .virtuals import Virtual, customised

# (name, subdir, virtual-package strings as the lock writes them)
LockedEntry = tuple[str, str, Iterable[str]]


def _identity(subdir: str, virtuals: Iterable[Virtual]) -> tuple[str, tuple[str, ...]]:
    return subdir, tuple(customised(subdir, virtuals))


def platform_renames(locked: Iterable[LockedEntry], declared: Iterable[PlatformDecl]) -> dict:
    """locked name -> manifest name, for every locked platform pixi would rename on load."""
    declared = list(declared)
    locked = [(name, subdir, [Virtual.parse(v) for v in vps]) for name, subdir, vps in locked]
    taken = {name for name, _, _ in locked}
    manifest_names = {p.name for p in declared}
    renames = {}
    for name, subdir, vps in locked:
        if name in manifest_names:
            continue  # already a manifest name: renaming it would orphan that reference
        identity = _identity(subdir, vps)
        matches = [p for p in declared if _identity(p.subdir, p.declared) == identity]
        if len(matches) == 1 and matches[0].name not in taken:
            renames[name] = matches[0].name
    return renames


def align_lock(lock: Lock, manifest: Manifest) -> Lock:
    """The lock with its platforms renamed to the manifest's names (see platform_renames)."""
    renames = platform_renames(
        ((p.name, p.subdir, map(str, p.virtual)) for p in lock.platforms.values()),
        manifest.platforms.values(),
    )
    if not renames:
        return lock

    def rename(table: dict) -> dict:
        return {renames.get(k, k): v for k, v in table.items()}

    def renamed(p: LockedPlatform) -> LockedPlatform:
        return replace(p, name=renames.get(p.name, p.name))

    lock.platforms = {renames.get(k, k): renamed(v) for k, v in lock.platforms.items()}
    for env in lock.envs.values():
        env.platforms = {renames.get(k, k): renamed(v) for k, v in env.platforms.items()}
        env.records, env.pypi = rename(env.records), rename(env.pypi)
    return lock
