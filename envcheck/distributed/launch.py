"""Start the distributed check on this machine through torchrun (torch.distributed.run).

verify's probe and bench/allreduce.py use run_local: one process per GPU (NCCL) or two
processes (gloo on the CPU), under an overall timeout. On timeout or interrupt torchrun gets
SIGTERM (it ends its ranks, each in its own session) and then SIGKILL; a rank whose torchrun
is gone ends itself (ranks.watch). A rank that died is named from torchrun's failure summary.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import diagnose, interrupts
from ..runner import SCRATCH_ENV, Child, child_env, describe_exit, read_result
from .bandwidth import DEFAULT_SIZES
from .ranks import GLOO_FIX, NCCL_FIX

MAX_RESULT_BYTES = 4 * 2**20
LOG_KEPT = 64 * 1024  # torchrun's failure summary sits at the end of its log
# how long torchrun gets to end its ranks after SIGTERM before it is killed
STOP_GRACE = 15.0
# torchrun's ChildFailedError summary: "rank      : 1 (local_rank: 1)\n  exitcode  : -9 ..."
ROOT_CAUSE = re.compile(
    r"Root Cause.*?host\s*:\s*(\S+)\s*\n\s*rank\s*:\s*(\d+) \(local_rank: (\d+)\)\s*\n"
    r"\s*exitcode\s*:\s*(-?\d+)",
    re.S,
)


def torchrun_command(
    nproc: int, out: Path, backend: str, sizes: list[int], iters: int, rank_timeout: float
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # one node, c10d rendezvous on a free local port
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        "-m",
        "envcheck.distributed",
        "--out",
        str(out),
        "--backend",
        backend,
        "--sizes",
        ",".join(str(s) for s in sizes),
        "--iters",
        str(iters),
        "--timeout",
        f"{rank_timeout:.1f}",
    ]


def root_cause(log: str) -> dict[str, Any] | None:
    """The first failed rank in torchrun's summary: rank, local rank, host, exit code."""
    m = ROOT_CAUSE.search(log)
    if not m:
        return None
    host, rank, local, code = m.groups()
    return {"rank": int(rank), "local_rank": int(local), "host": host, "exitcode": int(code)}


def run_local(
    nproc: int,
    backend: str = "gloo",
    sizes: list[int] | None = None,
    iters: int = 5,
    timeout: float = 180.0,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The combined result of one torchrun on this machine; failures are data, never raised.

    SIGTERM/SIGHUP (envcheck ending the launcher) become Interrupted here, so that torchrun is
    stopped and the temp folder removed instead of this process ending on the spot.
    """
    with interrupts.handled():
        return _run_local(nproc, backend, sizes, iters, timeout, extra_env)


def _run_local(
    nproc: int,
    backend: str,
    sizes: list[int] | None,
    iters: int,
    timeout: float,
    extra_env: dict[str, str] | None,
) -> dict[str, Any]:
    env = child_env(extra=extra_env)
    # the ranks give up (and name who is behind) well before the launcher's own limit,
    # which also covers starting torchrun and tearing the ranks down (~15 s on a busy machine)
    rank_timeout = max(min(timeout * 0.6, timeout - 30), 5.0)
    start = time.monotonic()
    # inside the probe's scratch folder when verify runs it: that goes with the probe even
    # when the launcher is killed before its own cleanup
    scratch = os.environ.get(SCRATCH_ENV) or None
    with tempfile.TemporaryDirectory(prefix="envcheck-dist-", dir=scratch) as tmp:
        out = Path(tmp, "result.json")
        # torchrun's own torchelastic_* folders go inside ours, so they go with it
        env["TMPDIR"] = tmp
        sizes = sizes or list(DEFAULT_SIZES)
        cmd = torchrun_command(nproc, out, backend, sizes, iters, rank_timeout)
        # torchrun gets SIGTERM (it ends its ranks, each in a session of its own), then
        # SIGKILL; only the end of its log is read (its failure summary)
        child = Child(cmd, env, keep=LOG_KEPT, own_group=False, stop_signal=signal.SIGTERM,
                      grace=STOP_GRACE, merge_output=True)  # fmt: skip
        try:
            timed_out = not child.wait(timeout)
        finally:  # also on Ctrl-C: end torchrun and its ranks before leaving
            log = child.finish()
        result = read_result(out, MAX_RESULT_BYTES)
    seconds = time.monotonic() - start
    return interpret(result, log or "", child.returncode, timed_out, timeout, nproc, backend) | {
        "launcher_seconds": seconds,
        "log_tail": (log or "")[-2000:],
    }


def interpret(
    result: dict[str, Any] | None,
    log: str,
    returncode: int,
    timed_out: bool,
    timeout: float,
    nproc: int,
    backend: str,
) -> dict[str, Any]:
    """Rank 0's result, completed with what torchrun saw (who died, how)."""
    found = _interpret(result, log, returncode, timed_out, timeout, nproc, backend)
    failure = found.get("failure")
    oom = out_of_memory_in_log(log)
    if failure and oom and "out of memory" not in str(failure.get("cause")):
        # a rank that ran out of GPU memory says so in the log; that comes before transports
        failure.update(cause=f"{oom.cause} ({str(failure.get('cause'))[:300]})", fix=oom.fix)
    return found


def out_of_memory_in_log(log: str) -> diagnose.Diagnosis | None:
    """The first rank's out-of-memory line in torchrun's log (its ranks' stderr), if any."""
    for line in log.splitlines():
        if "out of memory" in line.lower():
            return diagnose.out_of_memory(line.strip()[-400:])
    return None


def _interpret(
    result: dict[str, Any] | None,
    log: str,
    returncode: int,
    timed_out: bool,
    timeout: float,
    nproc: int,
    backend: str,
) -> dict[str, Any]:
    cause = root_cause(log)
    fix = NCCL_FIX if backend == "nccl" else GLOO_FIX
    if result is not None:
        failure = result.get("failure")
        if failure and cause and cause["rank"] != 0:
            failure["cause"] += (
                f"; torchrun: rank {cause['rank']} ended with {describe_exit(cause['exitcode'])}"
            )
        return result
    base = {"ok": False, "world_size": nproc, "backend": backend, "sizes": [], "ranks": []}
    last = next((ln for ln in reversed(log.strip().splitlines()) if ln.strip()), "")
    if cause:
        rank, how = cause["rank"], describe_exit(cause["exitcode"])
        failure = {
            "message": f"rank {rank} died",
            "cause": f"rank {rank} ({cause['host']}, local rank {cause['local_rank']}) ended "
            f"with {how} before rank 0 wrote a result",
            "fix": fix,
            "ranks": [rank],
        }
    elif timed_out:
        failure = {
            "message": f"no result within {timeout:.0f} s",
            "cause": f"torchrun did not finish within {timeout:.0f} s (hung): stopped it and "
            f"its ranks; last output: {last[:200]}",
            "fix": fix,
            "ranks": [],
        }
    else:
        failure = {
            "message": f"torchrun failed with {describe_exit(returncode)}",
            "cause": last[:300] or "no output",
            "fix": "run `torchrun --standalone --nproc-per-node 2 -m envcheck.distributed` "
            "to see the whole log",
            "ranks": [],
        }
    return {**base, "failure": failure}


def locked_nccl(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The nccl versions pixi.lock holds for this env on this machine's subdir."""
    from ..lockaudit.drift import current_env_name, current_subdir
    from ..lockaudit.lockscan import scan_lock

    env = dict(os.environ if environ is None else environ)
    prefix = env.get("CONDA_PREFIX")
    lock = Path(env.get("PIXI_PROJECT_ROOT") or os.getcwd(), "pixi.lock")
    if not lock.is_file():
        return {"skipped": f"no pixi.lock at {lock}"}
    name = env.get("PIXI_ENVIRONMENT_NAME") or current_env_name(prefix)
    try:
        scanned = scan_lock(lock)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {"skipped": f"cannot read {lock}: {exc}"}
    subdir = current_subdir()
    versions = sorted(
        {
            rec.version
            for plat in scanned.envs.get(name, {})
            if scanned.platforms.get(plat, plat) == subdir
            for rec in scanned.records(name, plat).values()
            if rec.name == "nccl"
        }
    )
    return {"lock": str(lock), "env": name, "versions": versions}


def probe(args: dict[str, Any]) -> dict[str, Any]:
    """verify's probe: NCCL with one rank per GPU when GPUs are expected, else gloo x 2."""
    gpus = int(args.get("gpus") or 0)
    backend = "nccl" if gpus else "gloo"
    result = run_local(gpus or 2, backend, timeout=float(args.get("timeout", 180)))
    result["lock_nccl"] = locked_nccl()
    return result
