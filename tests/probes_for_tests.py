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


def fine(args):
    return {"answer": 42, "echo": args}


def spawn_and_hang(args):
    # A grandchild, as frameworks start (compilers, data loaders): it must die with the probe.
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    time.sleep(3600)
