"""What the workspace offers, read from pixi.lock: every environment x platform, its subdir,
virtual packages (__cuda, __glibc, __osx), CUDA line and framework builds.

The lock, not a table in this code, is the source: when it changes, doctor's answer follows.
Read with the dependency-free line scanner, so no YAML library is needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import EnvcheckError
from ..lockaudit.lockscan import scan_lock

MAX_LOCK_BYTES = 64 * 2**20  # the lock is ~1 MB; anything far larger is not a pixi lock
# conda package -> envcheck's framework name
FRAMEWORK_PACKAGES = {"pytorch": "torch", "tensorflow": "tensorflow"}
KEY_PACKAGES = (*FRAMEWORK_PACKAGES, "cuda-version", "python")


def find_lock(option: str | None) -> Path:
    """--lock, else pixi.lock in the current folder or a parent, else the checkout's own."""
    if option:
        path = Path(option)
        if not path.is_file():
            raise EnvcheckError(
                f"--lock {option}: no such file; pass the workspace's pixi.lock", exit_code=2
            )
        return path
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pixi.lock").is_file():
            return folder / "pixi.lock"
    checkout = Path(__file__).resolve().parents[2] / "pixi.lock"
    if checkout.is_file():
        return checkout
    raise EnvcheckError(
        "no pixi.lock in this folder or its parents; run from the envcheck-stack checkout "
        "or pass --lock PATH",
        exit_code=2,
    )


def version_key(version: str | None) -> tuple[int, ...]:
    out = []
    for part in str(version or "").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _virtuals(specs: list[str]) -> dict[str, str]:
    """``["__cuda=12.0", "__archspec=0=x86_64"]`` -> {"__cuda": "12.0", "__archspec": "0"}."""
    out = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        out[name.strip()] = rest.split("=")[0].strip()
    return out


def _glibc_needed(platform_glibc: str | None, depends: list[list[str]]) -> str | None:
    """The highest glibc the platform entry or any locked package asks for (``__glibc >=2.28``)."""
    found = [platform_glibc] if platform_glibc else []
    for specs in depends:
        for spec in specs:
            if spec.startswith("__glibc") and ">=" in spec:
                found.append(spec.split(">=", 1)[1].split(",")[0].strip())
    return max(found, key=version_key) if found else None


def read_workspace(lock_path: Path) -> dict[str, Any]:
    """Every env x platform of the lock as plain data; EnvcheckError if it is not a pixi lock."""
    try:
        size = os.path.getsize(lock_path)
    except OSError as exc:
        raise EnvcheckError(f"cannot read {lock_path}: {exc.strerror}; check the path") from None
    if size > MAX_LOCK_BYTES:
        raise EnvcheckError(
            f"{lock_path} is {size // 2**20} MiB, too large for a pixi.lock; pass the "
            "workspace's pixi.lock with --lock"
        )
    try:
        scanned = scan_lock(lock_path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvcheckError(
            f"{lock_path} is not a pixi lock file ({exc}); regenerate it with `pixi lock`"
        ) from None
    rows = []
    for env, platforms in sorted(scanned.envs.items()):
        for name in sorted(platforms):
            records = scanned.records(env, name)
            virtual = _virtuals(scanned.virtual_packages.get(name, []))
            packages = {
                pkg: {
                    "version": rec.version,
                    "build": rec.build,
                    "depends": scanned.depends.get(rec.url, []),
                }
                for pkg, rec in records.items()
                if pkg in KEY_PACKAGES
            }
            cuda_version = packages.get("cuda-version", {}).get("version")
            rows.append(
                {
                    "env": env,
                    "platform": name,
                    "subdir": scanned.platforms.get(name, name),
                    "cuda_driver_min": virtual.get("__cuda"),
                    "cuda": cuda_version or virtual.get("__cuda"),
                    "glibc_min": _glibc_needed(
                        virtual.get("__glibc"),
                        [scanned.depends.get(r.url, []) for r in records.values()],
                    ),
                    "osx_min": virtual.get("__osx"),
                    "frameworks": [fw for pkg, fw in FRAMEWORK_PACKAGES.items() if pkg in packages],
                    "packages": {k: v for k, v in packages.items() if k != "cuda-version"},
                }
            )
    return {"lock": str(lock_path), "rows": rows}
