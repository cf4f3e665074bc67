"""The GPU architecture list of a locked CUDA build, from archlists.json (recipe provenance)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..gpuarch import from_torch_arch_list

DATA = Path(__file__).with_name("archlists.json")


@lru_cache(maxsize=1)
def _entries() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(DATA.read_text(encoding="utf-8"))["lists"])


def targets_of(entry: dict[str, Any]) -> list[str]:
    """The entry's recipe text as target names (sm_XY, compute_XY)."""
    if entry["format"] == "TORCH_CUDA_ARCH_LIST":
        return from_torch_arch_list(entry["value"])
    return [t.strip() for t in entry["value"].split(",") if t.strip()]


def cuda_of_build(build: str) -> str | None:
    """``cuda129_mkl_py312_h2ff76c1_302`` -> ``12.9``; None for a CPU build."""
    if not build.startswith("cuda"):
        return None
    digits = ""
    for ch in build[4:]:
        if not ch.isdigit():
            break
        digits += ch
    return f"{digits[:-1]}.{digits[-1]}" if len(digits) >= 2 else None


def build_number(build: str) -> int | None:
    tail = build.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def lookup(
    package: str, version: str, build: str, subdir: str, depends: list[str] | tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """The recorded entry for this exact build, or None when it is not recorded."""
    cuda, number = cuda_of_build(build), build_number(build)
    variant = " ".join(d for d in depends if d.startswith("arm-variant"))
    for entry in _entries():
        if (
            entry["package"] == package
            and entry["version"] == version
            and entry["cuda"] == cuda
            and number in entry["builds"]
            and subdir in entry["subdirs"]
            and not (entry.get("not_for_variant") and entry["not_for_variant"] in variant)
        ):
            return entry
    return None
