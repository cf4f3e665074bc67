"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Write via a temp file beside ``path`` and rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
