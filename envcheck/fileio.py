"""Old home of the file helpers; everything now lives in :mod:`envcheck.guard`.

Kept so that tools/, bench/ and code written against it keep working.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .guard import check_output, decode_utf8, read_input, write_atomic, write_output

__all__ = ["check_output", "decode_utf8", "read_bounded", "write_atomic", "write_output"]


def read_bounded(path: str | Path, limit: int, what: str, fix: str) -> bytes:
    """guard.read_input, except that a missing file raises FileNotFoundError (callers word it)."""
    if not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    return read_input(path, limit, what, fix)
