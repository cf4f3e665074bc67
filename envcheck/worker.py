"""Subprocess entry point: run probe functions and write their facts as JSON.

    python -m envcheck.worker MODULE:FUNCTION ARGS.json OUT.json   # one probe, then exit
    python -m envcheck.worker --serve NAME                          # a warm worker

A warm worker serves one framework's probes in turn (the framework imported once, one CUDA
context): it reads one request per line on stdin ({"target", "args", "out"}), writes the
result to the request's OUT file and answers "done" on its private reply channel (the
original stdout; stdout itself goes to /dev/null, since frameworks print to it).
Results go to files written atomically, so a complete file is a complete result.
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

from envcheck import phases


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


def show_in_ps(name: str) -> None:
    """Name this process after the probe it runs (ps, top, /proc/PID/comm); Linux only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME
    except (OSError, AttributeError):
        pass


def call(target: str, args: dict) -> dict:
    """Run one probe; every failure becomes data for the parent to diagnose."""
    phases.take()  # a new call: forget what an earlier one left unclaimed
    start = time.perf_counter()
    try:
        module_name, func_name = target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        result = {"ok": True, "data": func(args)}
    except Exception as exc:
        user_error = type(exc).__name__ == "EnvcheckError"
        result = {
            "ok": False,
            # an EnvcheckError already names cause and fix; anything else keeps its type
            "error": str(exc) if user_error else f"{type(exc).__name__}: {exc}".strip(),
            "error_type": type(exc).__name__,
            "user_error": user_error,
            "traceback": traceback.format_exc(limit=8),
        }
    timing = phases.take()
    timing["work"] = max(0.0, time.perf_counter() - start - sum(timing.values()))
    result["timing"] = timing
    return result


def write_result(path: str, result: dict) -> None:
    part = f"{path}.part"
    with open(part, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    os.replace(part, path)  # whole or absent: the parent never reads half a result


def serve(reply_fd: int) -> int:
    with os.fdopen(reply_fd, "w", encoding="utf-8", buffering=1) as reply:
        reply.write("ready\n")
        for line in sys.stdin:
            request = json.loads(line)
            show_in_ps(request.get("name") or "envcheck-probe")
            write_result(request["out"], call(request["target"], request["args"]))
            sys.stderr.flush()  # this call's stderr reaches the parent before its answer
            reply.write("done\n")
    return 0


def main(argv: list[str]) -> int:
    _end_with_parent()
    if argv[:1] == ["--serve"]:
        reply_fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        return serve(reply_fd)
    target, args_path, out_path = argv
    with open(args_path, encoding="utf-8") as f:
        args = json.load(f)
    write_result(out_path, call(target, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
