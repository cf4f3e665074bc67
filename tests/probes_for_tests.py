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


def health_under_load(args):
    """envcheck.probes.health.sample_while around a load that makes the stand-in NVML
    (tests/data/fake_nvml.c) play ``args["during"]`` (its FAKE_NVML_* variables) while it runs,
    as a GPU throttles only while it works, and ``args["leave"]`` from its end on (errors
    counted during the load)."""
    from envcheck.probes.health import sample_while

    def load():
        before = {k: os.environ.get(k) for k in args["during"]}
        os.environ.update(args["during"])
        time.sleep(args.get("seconds", 0.6))
        for k, v in before.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
        os.environ.update(args.get("leave", {}))

    return sample_while(load, args.get("uuids"), interval_s=0.05)


def torch_load_under_sampling(args):
    """The torch kernels probe's own load (small, on the CPU) under the health sampler."""
    import torch

    from envcheck.probes.health import sample_while
    from envcheck.probes.torch_probe import _burn

    return sample_while(lambda: _burn(torch, ["cpu"], args["seconds"], n=64), None, 0.05)
