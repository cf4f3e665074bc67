"""Read pixi.lock with py-rattler into plain per environment x platform data."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvcheckError
from ..fileio import decode_utf8, read_bounded
from ..guard import refuse_yaml_aliases
from .virtuals import Virtual

# pixi >= 0.68 writes v7; older versions mean an older pixi wrote (or will rewrite) the file.
EXPECTED_VERSION = 7
_VERSION_RE = re.compile(r"^version:\s*(\d+)\s*$", re.MULTILINE)
# The lock of a large workspace is a few MB; far more is not a pixi.lock (or is /dev/zero).
MAX_LOCK_BYTES = 128 * 1024 * 1024
_DIGESTS = {"sha256": 64, "md5": 32}
_DIGEST_RE = re.compile(r"^  (sha256|md5): *['\"]?([^'\"\s]*)", re.MULTILINE)
_RECORD_RE = re.compile(r"^- (?:conda|pypi): *(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class LockedPlatform:
    name: str
    subdir: str
    virtual: tuple[Virtual, ...]


@dataclass
class LockedEnv:
    name: str
    channels: list[str]
    platforms: dict[str, LockedPlatform]
    records: dict[str, list[Any]] = field(default_factory=dict)  # platform -> RepoDataRecords
    pypi: dict[str, list[Any]] = field(default_factory=dict)  # platform -> PypiLockedPackages


@dataclass
class Lock:
    path: Path
    version: int | None
    platforms: dict[str, LockedPlatform]
    envs: dict[str, LockedEnv]
    text: str  # kept for what py-rattler does not expose (solve options)


def rattler_missing(version: tuple[int, ...] = tuple(sys.version_info)) -> str:
    """The one line for a missing py-rattler: pip can install it only on Python >= 3.10."""
    if version[:2] < (3, 10):
        return (
            f"`envcheck lock` needs py-rattler >= 0.28, which has no build for Python "
            f"{version[0]}.{version[1]}: run it from a Python >= 3.10, e.g. "
            "python3.12 -m venv .venv-lock && .venv-lock/bin/pip install -r "
            "requirements/lockcheck.txt && .venv-lock/bin/python -m envcheck lock"
        )
    return "`envcheck lock` needs py-rattler >= 0.28: pip install 'py-rattler>=0.28,<0.29'"


def import_rattler() -> Any:
    """py-rattler, or a one-line error saying how to get it (it needs Python >= 3.10)."""
    try:
        import rattler
    except ImportError:
        raise EnvcheckError(rattler_missing()) from None
    return rattler


def load_lock(path: str | Path) -> Lock:
    """Parse pixi.lock; EnvcheckError (one line) when it is missing or malformed."""
    path = Path(path)
    rattler = import_rattler()
    fix = "regenerate it with `pixi lock`, or pass the workspace's lock with --lock PATH"
    try:
        text = decode_utf8(
            read_bounded(path, MAX_LOCK_BYTES, "lock file", fix), path, "lock file", fix
        )
    except FileNotFoundError:
        raise EnvcheckError(
            f"no lock file at {path}; run `pixi lock` or pass --lock PATH"
        ) from None
    except OSError as exc:
        raise EnvcheckError(f"cannot read lock file {path}: {exc.strerror or exc}; {fix}") from None
    match = _VERSION_RE.search(text[:4096])
    version = int(match.group(1)) if match else None
    if version is not None and version < EXPECTED_VERSION:
        # py-rattler would misread the newer layout under an old header (or old named
        # platforms) and blame a field; the real cause is the pixi that wrote the file.
        raise EnvcheckError(
            f"lock file {path} has format version {version}, written by a pixi older than "
            f"0.68 (which writes version {EXPECTED_VERSION}); re-lock with the pixi that "
            "pixi.toml's requires-pixi names: `pixi lock`"
        )
    try:
        refuse_yaml_aliases(text)  # py-rattler would expand an alias bomb to gigabytes
    except ValueError as exc:
        raise EnvcheckError(f"lock file {path} {exc}; {fix}") from None
    try:
        lock = rattler.LockFile.from_path(path)
        platforms = {p.name: _platform(p) for p in lock.platforms()}
        envs = {name: _env(name, env) for name, env in lock.environments()}
    except Exception as exc:  # py-rattler raises its own exception types for every parse error
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = bad_digest(text) or msg  # py-rattler does not say which record
        raise EnvcheckError(
            f"malformed lock file {path}: {msg}; regenerate it with `pixi lock`"
        ) from None
    return Lock(path, version, platforms, envs, text)


def bad_digest(text: str) -> str | None:
    """Name the first package record whose sha256/md5 is not a hex digest of the right length."""
    for match in _DIGEST_RE.finditer(text):
        kind, value = match.groups()
        want = _DIGESTS[kind]
        if len(value) == want and all(c in "0123456789abcdefABCDEF" for c in value):
            continue
        records = list(_RECORD_RE.finditer(text, 0, match.start()))
        record = records[-1].group(1).rsplit("/", 1)[-1] if records else "a package"
        line = text.count("\n", 0, match.start()) + 1
        return (
            f"the {kind} of {record} (line {line}) is {len(value)} characters "
            f"{value[:12]!r}..., not {want} hex digits"
        )
    return None


def _platform(p: Any) -> LockedPlatform:
    return LockedPlatform(
        p.name, str(p.subdir), tuple(Virtual.parse(v) for v in p.virtual_packages)
    )


def _env(name: str, env: Any) -> LockedEnv:
    locked = LockedEnv(
        name=name,
        channels=[str(c) for c in env.channels()],
        platforms={p.name: _platform(p) for p in env.platforms()},
    )
    for plat in env.platforms():
        locked.records[plat.name] = env.conda_repodata_records_for_platform(plat) or []
        locked.pypi[plat.name] = env.pypi_packages_for_platform(plat) or []
    return locked


def solve_options(text: str) -> dict[str, dict[str, str]]:
    """env -> its `options:` in the lock (exclude-newer, strategy, channel-priority).

    py-rattler 0.28 does not expose them, so scan the environments block of the YAML, which
    pixi writes in one fixed layout: two-space env names, four-space keys, six-space values.
    """
    out: dict[str, dict[str, str]] = {}
    env = None
    in_options = in_envs = False
    for line in text.splitlines():
        if not line.startswith(" "):
            if in_envs:
                break  # the environments block is over; the packages block is not needed
            in_envs = line.rstrip() == "environments:"
            continue
        if not in_envs:
            continue
        if line.startswith("  ") and not line.startswith("   "):
            env = line.strip().rstrip(":").strip("'\"")
            in_options = False
        elif line.startswith("    ") and not line.startswith("     "):
            in_options = line.strip() == "options:"
        elif in_options and env and line.startswith("      ") and ":" in line:
            key, _, value = line.strip().partition(":")
            out.setdefault(env, {})[key.strip()] = value.strip().strip("'\"")
    return out
