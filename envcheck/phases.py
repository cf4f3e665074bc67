"""Where a probe's time goes: probes mark their phases, the worker ships them with the result.

    with phases.phase("import"):
        import torch

Names: "import" (the framework), "init" (device/context), "data", "eval"; what no phase
covers is the work itself. In a warm worker the framework is imported once, so only the
first call of a process spends time in "import".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

_spent: dict[str, float] = {}


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        _spent[name] = _spent.get(name, 0.0) + time.perf_counter() - start


def take() -> dict[str, float]:
    """The phases marked since the last take (then forgotten)."""
    spent = dict(_spent)
    _spent.clear()
    return spent
