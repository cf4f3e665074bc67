"""Probe functions that misbehave on purpose, run by envcheck.worker in tests."""

from __future__ import annotations

import os
import time


def hang(args):
    time.sleep(3600)


def abort(args):
    os.abort()


def exit_early(args):
    os._exit(3)


def raises(args):
    raise ValueError("bad value in probe")


def pid(args):
    # which process served the call: a warm worker serves many
    return {"answer": 42, "pid": os.getpid()}


def result_then_abort(args):
    # A CUDA destructor aborting at interpreter exit after the result is written
    # (pytorch/pytorch#149762): the result is complete, the exit is not clean.
    import atexit

    atexit.register(os.abort)
    return {"answer": 42}


def fine(args):
    return {"answer": 42, "echo": args}


def spawn_and_hang(args):
    # A grandchild, as frameworks start (compilers, data loaders): it must die with the probe.
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    time.sleep(3600)


def flood_stderr(args):
    # A framework stuck in a logging loop: far more stderr than anyone should keep.
    import sys

    line = b"W flood: the same warning again and again\n" * 25_000  # ~1 MB
    for _ in range(args["megabytes"]):
        sys.stderr.buffer.write(line)
    sys.stderr.buffer.write(b"the last line\n")
    return {"done": True}
