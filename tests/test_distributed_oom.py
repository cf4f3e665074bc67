"""Out of memory in the distributed check is diagnosed as out of memory, before any advice
about NCCL or gloo transports (NCCL_P2P_DISABLE and the like would send a user astray)."""

from __future__ import annotations

import pytest
from facts_library import healthy_cuda12
from test_diagnose import replay

from envcheck import diagnose
from envcheck.distributed import FAULT_ENV
from envcheck.distributed.launch import interpret, run_local
from envcheck.distributed.ranks import NCCL_FIX, OOM_FAULT
from envcheck.model import Status

pytest.importorskip("torch")


def test_a_rank_out_of_memory_gets_out_of_memory_advice():
    """A real torchrun, two gloo ranks; rank 1 raises torch.OutOfMemoryError."""
    r = run_local(2, "gloo", [4096], iters=1, timeout=120, extra_env={FAULT_ENV: "oom:1"})
    assert not r["ok"]
    f = r["failure"]
    assert "out of memory" in f["cause"].lower() and "rank 1" in f["cause"], f
    assert "smaller batch" in f["fix"] and "mixed precision" in f["fix"]
    assert "GLOO_SOCKET_IFNAME" not in f["fix"] and "NCCL" not in f["fix"]


# torchrun's log when rank 1 ran out of memory and torchrun then ended rank 0 (no result)
TORCHRUN_LOG = f"""\
envcheck.distributed: rank 1 failed: OutOfMemoryError: {OOM_FAULT}
E1205 18:02:11.431000 4242 torch/distributed/elastic/multiprocessing/api.py:882] failed \
(exitcode: 1) local_rank: 1 (pid: 4244) of binary: /usr/bin/python3
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
envcheck.distributed FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-05_18:02:11
  host      : gpu-node
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 4244)
  error_file: <N/A>
============================================================
"""


def test_torchrun_log_naming_out_of_memory_beats_transport_advice():
    r = interpret(None, TORCHRUN_LOG, 1, False, 180.0, 2, "nccl")
    f = r["failure"]
    assert f["ranks"] == [1]
    assert f["cause"].startswith("the GPU ran out of memory: envcheck.distributed: rank 1 failed")
    assert "ended with exit code 1" in f["cause"]
    assert "NCCL_P2P_DISABLE" not in f["fix"] and "smaller batch" in f["fix"]


def test_recorded_nccl_failure_with_out_of_memory_is_diagnosed_as_such():
    """Facts recorded before the ranks put out of memory first: the check still does."""
    facts = healthy_cuda12()
    failure = {
        "message": "rank(s) 1 stopped during all-reduce of 4 KiB",
        "cause": f"rank 1 (gpu-node, local rank 1) raised OutOfMemoryError: {OOM_FAULT} while "
        "rank 0 waited in all-reduce of 4 KiB",
        "fix": NCCL_FIX,
        "ranks": [1],
    }
    data = {"ok": False, "world_size": 2, "backend": "nccl", "sizes": [], "ranks": []}
    facts["torch.distributed"] = {**facts["torch.facts"], "data": {**data, "failure": failure}}
    checks, _ = replay(facts, frameworks=("torch",), only={"distributed.torch"})
    c = checks["distributed.torch"]
    assert c.status is Status.FAIL
    assert "CUDA out of memory" in c.cause
    assert "NCCL_P2P_DISABLE" not in c.fix and "smaller batch" in c.fix


def test_nccl_out_of_memory_under_last_error_reaches_the_verdict():
    """NCCL's first line names no memory; its 'Last error' line does (NCCL 2.2x's text)."""
    import torch.distributed as dist

    from envcheck.distributed.ranks import describe_error

    exc = dist.DistBackendError(
        "NCCL error in: /pytorch/torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:3356, "
        "unhandled cuda error (run with NCCL_DEBUG=INFO for details), NCCL version 2.27.3\n"
        "ncclUnhandledCudaError: Call to CUDA function failed.\n"
        "Last error:\n"
        "Cuda failure 2 'out of memory'"
    )
    line = describe_error(exc)
    assert len(line) <= 300  # what a rank may put in the store
    assert line.startswith("DistBackendError: NCCL error in: ")
    assert line.endswith(" ... Cuda failure 2 'out of memory'") and "\n" not in line
    assert "smaller batch" in diagnose.out_of_memory(line).fix
    plain = describe_error(RuntimeError("Connection closed by peer\nsee the remote worker"))
    assert plain == "RuntimeError: Connection closed by peer"
