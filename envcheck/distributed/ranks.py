"""One rank of the all-reduce check: `python -m envcheck.distributed` under torchrun or srun.

Every rank records how far it got in the job's c10d store (hosted by torchrun's agent, or by
rank 0 under srun). When a rank dies or hangs, rank 0 gives up at --timeout (or at the first
collective error), reads every rank's last step, writes a FAIL naming the ranks that fell
behind and exits non-zero, which makes torchrun end the others. Rank 0 writes the combined
result; the per-rank results travel through the store, not through a collective, so a broken
collective cannot hide them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .. import diagnose
from ..errors import EnvcheckError
from ..guard import check_output, one_line, write_output
from . import FAULT_ENV
from .bandwidth import DEFAULT_SIZES, algbw_gbps, busbw_gbps, human_size, parse_sizes

SCHEMA = "envcheck.distributed/1"
NCCL_FIX = (
    "rerun with NCCL_DEBUG=INFO to see the transport NCCL picks; try NCCL_P2P_DISABLE=1 "
    "(peer-to-peer broken by the PCIe/ACS or IOMMU setup), NCCL_IB_DISABLE=1 (InfiniBand not "
    "usable), NCCL_SOCKET_IFNAME=<the interface that routes between the nodes>"
)
GLOO_FIX = (
    "set GLOO_SOCKET_IFNAME=<the interface that routes between the nodes> and rerun with "
    "TORCH_DISTRIBUTED_DEBUG=DETAIL"
)
OOM_FAULT = (  # the fault hook's error: torch's own text for a full GPU
    "CUDA out of memory. Tried to allocate 16.00 KiB. GPU 1 has a total capacity of 79.19 GiB "
    "of which 1.06 MiB is free. Including non-PyTorch memory, this process has 79.18 GiB memory "
    "in use."
)
LAGGARD_CAUSES = "a rank that stops early died (see the launcher's log for its exit code) or hung"


@dataclass(frozen=True)
class RankEnv:
    rank: int
    world_size: int
    local_rank: int
    node_rank: int
    master_addr: str
    master_port: int
    launcher: str  # torchrun | srun


def _int(environ: dict[str, str], name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise EnvcheckError(f"{name}={environ[name]!r} is not a number", exit_code=2) from None


def rank_env(environ: dict[str, str]) -> RankEnv:
    """Who this rank is: torchrun's RANK/WORLD_SIZE/LOCAL_RANK, else SLURM's srun variables."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        launcher, names = "torchrun", ("RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK")
    elif "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
        launcher, names = "srun", ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID")
    else:
        raise EnvcheckError(
            "RANK and WORLD_SIZE are unset: not started by torchrun or srun; run "
            "`torchrun --nproc-per-node 2 -m envcheck.distributed` (or under srun)",
            exit_code=2,
        )
    rank, world = _int(environ, names[0]), _int(environ, names[1])
    local = _int(environ, names[2]) if names[2] in environ else rank
    node = _int(environ, names[3]) if names[3] in environ else 0
    if not 0 <= rank < world:
        raise EnvcheckError(f"rank {rank} is outside a world of {world} ranks", exit_code=2)
    if not environ.get("MASTER_ADDR") or not environ.get("MASTER_PORT"):
        raise EnvcheckError(
            "MASTER_ADDR/MASTER_PORT are unset: the ranks cannot meet; under srun export "
            'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) '
            "MASTER_PORT=29500 first",
            exit_code=2,
        )
    port = _int(environ, "MASTER_PORT")
    if not 1 <= port <= 65535:
        raise EnvcheckError(
            f"MASTER_PORT={port} is not a TCP port (1-65535); export a free port such as 29500",
            exit_code=2,
        )
    return RankEnv(rank, world, local, node, environ["MASTER_ADDR"], port, launcher)


def parse_fault(value: str | None) -> tuple[str, int] | None:
    """The test hook's "die:RANK" / "hang:RANK" (see FAULT_ENV)."""
    if not value:
        return None
    kind, _, rank = value.partition(":")
    if kind not in ("die", "hang", "oom") or not rank.isdigit():
        raise EnvcheckError(
            f"{FAULT_ENV}={value!r}: use die:RANK, hang:RANK or oom:RANK", exit_code=2
        )
    return kind, int(rank)


class Board:
    """Each rank's identity, last finished step, error and result, in the job's store."""

    def __init__(self, store: Any, rank: int, world_size: int) -> None:
        self.store, self.rank, self.world_size = store, rank, world_size

    def put(self, key: str, value: Any) -> None:
        self.store.set(f"{key}/{self.rank}", json.dumps(value))

    def peek(self, key: str, rank: int) -> Any:
        name = f"{key}/{rank}"
        try:
            return json.loads(self.store.get(name)) if self.store.check([name]) else None
        except Exception:  # a store that went away: nothing known about that rank
            return None

    def wait_all(self, key: str, seconds: float) -> list[Any]:
        names = [f"{key}/{r}" for r in range(self.world_size)]
        self.store.wait(names, timedelta(seconds=max(seconds, 1.0)))
        return [json.loads(self.store.get(n)) for n in names]


class Rank:
    """The state one rank reports: where it is, what it measured, and (rank 0) the verdict."""

    def __init__(self, env: RankEnv, opts: argparse.Namespace, sizes: list[int]) -> None:
        self.env, self.opts, self.sizes = env, opts, sizes
        self.host = socket.gethostname()
        self.board: Board | None = None
        # progress: 2 per step, +1 once inside its collective (a rank that hangs before
        # entering an all-reduce is behind one that waits inside it)
        self.progress, self.doing, self.done = -2, "connecting to the store", "nothing"
        self.lock = threading.Lock()
        self.finished = False
        self.ok = True
        self.meta: dict[str, Any] = {"backend": opts.backend, "nccl_version": None}

    def mark(self, what_next: str) -> None:
        """The step just finished; ``what_next`` names the one this rank now works on."""
        self.progress = self.progress // 2 * 2 + 2
        self.done, self.doing = self.doing, what_next
        self.publish()

    def enter(self) -> None:
        """This rank is now inside the collective of its current step."""
        self.progress |= 1
        self.publish()

    def publish(self) -> None:
        if self.board:
            self.board.put("step", {"progress": self.progress, "done": self.done})

    def describe(self, rank: int) -> str:
        who = self.board.peek("who", rank) if self.board else None
        if not who:
            return f"rank {rank}"
        return f"rank {rank} ({who['host']}, local rank {who['local_rank']})"

    def laggards(self) -> list[dict[str, Any]]:
        """Ranks that raised, or that have not finished the step rank 0 is working on."""
        out = []
        for r in range(1, self.env.world_size):
            last = self.board.peek("step", r) if self.board else None
            error = self.board.peek("error", r) if self.board else None
            if error or last is None or last["progress"] < self.progress:
                done = f"after {last['done']!r}" if last else "before reaching the store"
                what = f"raised {error}" if error else f"stopped {done}"
                out.append({"rank": r, "message": f"{self.describe(r)} {what}"})
        return out

    def failure(self, error: str | None) -> dict[str, Any]:
        """Rank 0's verdict; out of memory (its own or a rank's) before any transport advice."""
        found = self._failure(error)
        lag = self.laggards() if self.board is not None else []
        for text in [error, *(x["message"] for x in lag)]:
            oom = diagnose.out_of_memory(text)
            if oom:  # the cause already quotes the rank's error
                return {**found, "message": f"{found['message']}: out of GPU memory",
                        "fix": oom.fix}  # fmt: skip
        return found

    def _failure(self, error: str | None) -> dict[str, Any]:
        fix = NCCL_FIX if self.meta["backend"] == "nccl" else GLOO_FIX
        if self.board is None:
            return {
                "message": "the ranks could not meet",
                "cause": f"rank 0 did not reach the store at {self.env.master_addr}:"
                f"{self.env.master_port} within {self.opts.timeout:.0f} s"
                + (f" ({error})" if error else ""),
                "fix": "check MASTER_ADDR/MASTER_PORT and that the port is reachable; " + fix,
                "ranks": [0],
            }
        lag = self.laggards()
        if lag:
            where = f"while rank 0 waited in {self.doing}"
            cause = "; ".join(x["message"] for x in lag) + f" {where}"
            if error:
                cause += f" ({error})"
            return {
                "message": f"rank(s) {', '.join(str(x['rank']) for x in lag)} stopped during "
                f"{self.doing}",
                "cause": f"{cause}; {LAGGARD_CAUSES}",
                "fix": fix,
                "ranks": [x["rank"] for x in lag],
            }
        if error:
            return {"message": f"rank 0 failed in {self.doing}", "cause": error, "fix": fix,
                    "ranks": [0]}  # fmt: skip
        return {
            "message": f"every rank is stuck in {self.doing}",
            "cause": f"no rank finished {self.doing} within {self.opts.timeout:.0f} s: the "
            "transport between the ranks hangs",
            "fix": fix,
            "ranks": list(range(self.env.world_size)),
        }

    def finish(self, result: dict[str, Any]) -> bool:
        """Write rank 0's result once (the main thread and the deadline race for it)."""
        with self.lock:
            if self.finished:
                return False
            self.finished = True
        self.ok = bool(result.get("ok", True))
        if self.env.rank == 0:
            if self.opts.out:
                try:
                    write_output(self.opts.out, json.dumps(result, indent=2) + "\n", "--out")
                except EnvcheckError as exc:  # e.g. a full disk: say so, and fail the run
                    print(f"envcheck.distributed: error: {one_line(exc.message)}", file=sys.stderr)
                    self.ok = False
            print_summary(result)
        return True

    def give_up(self, error: str | None) -> None:
        """Rank 0's verdict when a rank failed or the deadline passed; other ranks just report."""
        if self.env.rank != 0:
            if error and self.board:
                self.board.put("error", error[:300])
            return
        result = self.combined(self.known_results())
        result["ok"] = False
        result["failure"] = self.failure(error)
        self.finish(result)

    def known_results(self) -> list[dict[str, Any]]:
        out = []
        for r in range(self.env.world_size):
            got = self.board.peek("result", r) if self.board else None
            out.append(got or {"rank": r, "ok": False, "host": None, "sizes": []})
        return out

    def combined(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        n = self.env.world_size
        sizes = []
        for i, nbytes in enumerate(self.sizes):
            per_rank = [r["sizes"][i] for r in ranks if len(r.get("sizes", [])) > i]
            if len(per_rank) < n:
                continue
            # nccl-tests' default (-a 1): the time averaged over the ranks
            seconds = sum(x["seconds"] for x in per_rank) / n
            sizes.append(
                {
                    "bytes": nbytes,
                    "seconds": seconds,
                    "algbw_gbps": algbw_gbps(nbytes, seconds),
                    "busbw_gbps": busbw_gbps(nbytes, seconds, n),
                    "exact": all(x["exact"] for x in per_rank),
                }
            )
        ok = len(sizes) == len(self.sizes) and all(s["exact"] for s in sizes)
        wrong = [
            f"rank {r['rank']}: {x['wrong_elements']} wrong of {x['bytes'] // 4} at "
            f"{human_size(x['bytes'])}"
            for r in ranks
            for x in r.get("sizes", [])
            if not x["exact"]
        ]
        failure = None
        if wrong:
            failure = {
                "message": "all-reduce gave wrong sums",
                "cause": "; ".join(wrong[:4]),
                "fix": "the GPUs or the links between them corrupt data: check ECC with "
                "`nvidia-smi -q -d ECC`, run `dcgmi diag -r 2`; retry with NCCL_P2P_DISABLE=1",
                "ranks": sorted({r["rank"] for r in ranks if not r.get("ok", True)}),
            }
        return {
            "schema": SCHEMA,
            "ok": ok,
            "launcher": self.env.launcher,
            "world_size": n,
            "nodes": len({r.get("node_rank") for r in ranks if r.get("host")}),
            "iters": self.opts.iters,
            **self.meta,
            "sizes": sizes,
            "ranks": ranks,
            "failure": failure,
        }


def print_summary(result: dict[str, Any]) -> None:
    nccl = f", NCCL {result['nccl_version']}" if result["nccl_version"] else ""
    print(
        f"envcheck.distributed: {result['world_size']} rank(s) on {result['nodes']} node(s), "
        f"{result['backend']}{nccl}"
    )
    for s in result["sizes"]:
        print(
            f"  {human_size(s['bytes']):>9}  {s['seconds'] * 1e6:12.1f} us  algbw "
            f"{s['algbw_gbps']:8.3f} GB/s  busbw {s['busbw_gbps']:8.3f} GB/s  "
            + ("exact" if s["exact"] else "WRONG")
        )
    failure = result["failure"] or {}
    verdict = "PASS" if result["ok"] else f"FAIL: {failure.get('cause')}"
    # the cause quotes other ranks (host names, their errors): plain text on one line
    print(f"envcheck.distributed: {one_line(verdict)}", flush=True)


def watch(rank: Rank, deadline: float) -> None:
    """Rank 0 gives up at the deadline; every rank ends when its launcher is gone."""
    parent = os.getppid()
    while True:
        time.sleep(0.2)
        with rank.lock:
            if rank.finished:
                return
        if os.getppid() != parent:  # torchrun was killed: do not outlive it
            os._exit(1)
        if rank.env.rank == 0 and time.monotonic() > deadline:
            rank.give_up(None)
            os._exit(1)


def measure(torch: Any, dist: Any, rank: Rank, device: Any, nbytes: int) -> dict[str, Any]:
    """All-reduce ``nbytes`` of float32: once checked exactly, then timed over --iters."""
    n, world = nbytes // 4, rank.env.world_size
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # integer values: every sum is exact in float32, so the check can be equality
    base = (torch.arange(n, device=device) % 7 + 1).to(torch.float32)
    t = base * (rank.env.rank + 1)
    rank.enter()
    dist.all_reduce(t)
    sync()
    wrong = int((t != base * (world * (world + 1) // 2)).sum().item())
    z = torch.zeros(n, device=device)
    dist.all_reduce(z)  # warm-up of the timed buffer
    sync()
    start = time.perf_counter()
    for _ in range(rank.opts.iters):
        dist.all_reduce(z)
    sync()
    seconds = (time.perf_counter() - start) / rank.opts.iters
    wrong += int(z.count_nonzero().item())
    return {"bytes": nbytes, "seconds": seconds, "exact": wrong == 0, "wrong_elements": wrong}


def run(rank: Rank) -> int:
    env, opts = rank.env, rank.opts
    fault = parse_fault(os.environ.get(FAULT_ENV))
    timeout = timedelta(seconds=opts.timeout)
    deadline = time.monotonic() + opts.timeout
    # before importing torch (seconds): a rank must not outlive a launcher killed meanwhile
    threading.Thread(target=watch, args=(rank, deadline), daemon=True).start()
    import torch
    import torch.distributed as dist

    os.environ.update(
        RANK=str(env.rank),
        WORLD_SIZE=str(env.world_size),
        LOCAL_RANK=str(env.local_rank),
        MASTER_ADDR=env.master_addr,
        MASTER_PORT=str(env.master_port),
    )
    backend = opts.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    rank.meta.update(backend=backend, torch_version=torch.__version__)
    if torch.version.cuda:
        rank.meta["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
    device = torch.device("cpu")
    if backend == "nccl":
        count = torch.cuda.device_count()
        # srun --gpus-per-task=1 shows each task its own GPU only, as device 0
        index = 0 if env.launcher == "srun" and count == 1 else env.local_rank
        if index >= count:
            raise EnvcheckError(
                f"local rank {env.local_rank} has no GPU ({count} visible); start one process "
                f"per GPU: --nproc-per-node {count}",
                exit_code=2,
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    who = {"host": rank.host, "local_rank": env.local_rank, "node_rank": env.node_rank}
    try:
        store, _, _ = next(dist.rendezvous("env://", env.rank, env.world_size, timeout=timeout))
        rank.board = Board(dist.PrefixStore("envcheck", store), env.rank, env.world_size)
        rank.board.put("who", who)
        rank.mark("process group initialisation")
        dist.init_process_group(
            backend, store=store, rank=env.rank, world_size=env.world_size, timeout=timeout
        )
        results = []
        for nbytes in rank.sizes:
            rank.mark(f"all-reduce of {human_size(nbytes)}")
            if fault and fault[1] == env.rank and not results:
                if fault[0] == "die":
                    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
                if fault[0] == "oom":  # what the CUDA caching allocator raises on a full GPU
                    raise torch.OutOfMemoryError(OOM_FAULT)
                time.sleep(10**6)
            results.append(measure(torch, dist, rank, device, nbytes))
        rank.mark("collecting the results")
        mine = {"rank": env.rank, **who, "device": str(device), "ok": True, "sizes": results}
        mine["ok"] = all(x["exact"] for x in results)
        rank.board.put("result", mine)
        if env.rank == 0:
            ranks = rank.board.wait_all("result", deadline - time.monotonic())
            rank.finish(rank.combined(ranks))
        else:
            rank.finish({})
        dist.destroy_process_group()
    except Exception as exc:  # a collective or the store failed: name who is behind
        error = describe_error(exc)
        # in torchrun's log too: where rank 0 is ended before it can read the store
        line = f"rank {env.rank} failed: {error}"
        if rank.board is None and env.rank != 0:  # it never reached the store: say where
            line = (
                f"rank {env.rank} could not reach the store at {env.master_addr}:"
                f"{env.master_port} ({error}); check MASTER_ADDR/MASTER_PORT and that the "
                "port is reachable from this node"
            )
        print(f"envcheck.distributed: {one_line(line)}", file=sys.stderr, flush=True)
        rank.give_up(error)
        return 1
    return 0 if rank.ok else 1


def describe_error(exc: BaseException) -> str:
    """One line: the exception's class and first line, plus the line that says out of memory
    where a later one does (NCCL puts "Cuda failure 2 'out of memory'" under "Last error:")."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [""]
    oom = next((ln for ln in lines[1:] if "out of memory" in ln.lower()), None)
    if oom:  # short enough that the store's 300 characters keep the out-of-memory line
        return f"{type(exc).__name__}: {lines[0][:120]} ... {oom[:120]}"
    return f"{type(exc).__name__}: {lines[0][:300]}"


def _resolve(env: RankEnv) -> None:
    """A MASTER_ADDR that does not resolve is said in one line, before PyTorch tries it."""
    try:
        socket.getaddrinfo(env.master_addr, env.master_port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise EnvcheckError(
            f"MASTER_ADDR={one_line(env.master_addr)[:100]!r} does not resolve "
            f"({getattr(exc, 'strerror', None) or exc}); export the address or host name of "
            "the node that runs rank 0"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m envcheck.distributed",
        description="all-reduce check across every rank (start under torchrun or srun)",
    )
    p.add_argument("--out", type=Path, help="rank 0 writes the combined JSON result here")
    p.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto",
                   help="auto: nccl when CUDA is usable, else gloo")  # fmt: skip
    p.add_argument(
        "--sizes",
        default=",".join(f"{s // 1024}K" for s in DEFAULT_SIZES),
        help="comma list of message sizes (bytes, K, M, G)",
    )
    p.add_argument("--iters", type=int, default=5, help="timed all-reduces per size")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds before rank 0 gives up and names the ranks behind")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        if opts.iters < 1 or not math.isfinite(opts.timeout) or opts.timeout <= 0:
            raise EnvcheckError(
                f"--iters {opts.iters} / --timeout {opts.timeout}: both must be positive and "
                "finite; e.g. --iters 5 --timeout 120",
                exit_code=2,
            )
        try:
            sizes = parse_sizes(opts.sizes)
        except ValueError as exc:
            raise EnvcheckError(f"--sizes: {exc}", exit_code=2) from None
        env = rank_env(dict(os.environ))
        if env.rank == 0 and opts.out:
            check_output(opts.out, "--out")
        _resolve(env)
        # PyTorch's C++ log (socket retries, 40 lines of C++ frames per failed connect) would
        # bury the one line that names the cause; TORCH_CPP_LOG_LEVEL=INFO shows it again
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
        return run(Rank(env, opts, sizes))
    except EnvcheckError as exc:
        print(f"envcheck.distributed: error: {one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        print(f"envcheck.distributed: error: {exc}; install PyTorch", file=sys.stderr)
        return 1
