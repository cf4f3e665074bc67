"""Import the scientific stack, timing each import."""

from __future__ import annotations

import importlib
import time
from typing import Any

MODULES = ("numpy", "scipy", "pandas", "matplotlib")


def gather(args: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name in args.get("modules", MODULES):
        start = time.perf_counter()
        try:
            mod = importlib.import_module(name)
            out[name] = {
                "ok": True,
                "version": getattr(mod, "__version__", None),
                "seconds": time.perf_counter() - start,
            }
        except Exception as exc:  # a broken import is a fact to report, not a crash
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"modules": out}
