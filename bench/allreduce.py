"""Benchmark all-reduce: algbw and busbw per message size, as nccl-tests reports them.

Runs envcheck's distributed check through torchrun (the same ranks verify starts), with more
sizes and iterations; busbw = algbw * 2 (n - 1) / n, the time averaged over the ranks.

    python bench/allreduce.py                            # gloo, 2 processes on this CPU
    python bench/allreduce.py --backend nccl             # one process per GPU (NCCL)
    python bench/allreduce.py --sizes 1M,64M,256M --iters 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from envcheck.distributed.bandwidth import parse_sizes  # noqa: E402
from envcheck.distributed.launch import run_local  # noqa: E402
from envcheck.distributed.ranks import print_summary  # noqa: E402
from envcheck.fileio import write_atomic  # noqa: E402


def gpu_count() -> int:
    import torch  # only to count GPUs for --backend nccl without --nproc

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    p.add_argument("--nproc", type=int, help="ranks (default: 2 for gloo, every GPU for nccl)")
    p.add_argument("--sizes", default="4K,64K,1M,16M,64M", help="comma list (bytes, K, M, G)")
    p.add_argument("--iters", type=int, default=20, help="timed all-reduces per size")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the figures as JSON")
    ns = p.parse_args(argv)
    try:
        sizes = parse_sizes(ns.sizes)
    except ValueError as exc:
        p.error(f"--sizes: {exc}")
    if ns.json and ns.json.is_dir():
        p.error(f"--json {ns.json} is a directory; name a file")
    nproc = ns.nproc or (2 if ns.backend == "gloo" else gpu_count())
    if nproc < 1:
        p.error("no GPU visible for --backend nccl; use --backend gloo")
    result = run_local(nproc, ns.backend, sizes, ns.iters, ns.timeout)
    machine = {
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(f"machine: {machine['host']} ({machine['cpu']}, {machine['cpu_count']} CPUs)")
    if result.get("sizes"):
        print_summary(result)
    else:
        print(f"FAILED: {result['failure']['message']}: {result['failure']['cause']}")
    if ns.json:
        write_atomic(ns.json, json.dumps({"machine": machine, "result": result}, indent=2) + "\n")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
