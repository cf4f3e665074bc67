"""Subprocess entry point: run one probe function and write its facts as JSON.

    python -m envcheck.worker MODULE:FUNCTION ARGS.json OUT.json

The result goes to a file, not stdout, because frameworks print to both streams.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback


def _end_with_parent() -> None:
    """Kill this probe's process group when envcheck itself dies (e.g. by SIGKILL).

    envcheck ends the group on Ctrl-C, SIGTERM and SIGHUP; a parent that is killed
    outright cannot, and the probe (in its own session) would compute on, orphaned.
    """
    parent = os.getppid()
    if not hasattr(os, "killpg") or parent == 1:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    target, args_path, out_path = argv
    _end_with_parent()
    with open(args_path, encoding="utf-8") as f:
        args = json.load(f)
    module_name, func_name = target.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        result = {"ok": True, "data": func(args)}
    except Exception as exc:  # every failure becomes data for the parent to diagnose
        user_error = type(exc).__name__ == "EnvcheckError"
        result = {
            "ok": False,
            # an EnvcheckError already names cause and fix; anything else keeps its type
            "error": str(exc) if user_error else f"{type(exc).__name__}: {exc}".strip(),
            "error_type": type(exc).__name__,
            "user_error": user_error,
            "traceback": traceback.format_exc(limit=8),
        }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
