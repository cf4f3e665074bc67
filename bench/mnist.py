"""Benchmark verify's MNIST training step: time to 99% / 98%, throughput, cold wall time.

Each run is a fresh interpreter through envcheck's runner (imports, data load, graph
build and training all included in ``wall_seconds``), exactly as verify runs it.

    python bench/mnist.py                          # both frameworks, GPU if any, else CPU
    python bench/mnist.py --framework torch --device cpu --full --json out.json
    python bench/mnist.py --framework torch --verify   # also time a whole cold `verify`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from envcheck.checks.registry import PROBES  # noqa: E402
from envcheck.fileio import write_atomic  # noqa: E402
from envcheck.profiles import KNOWN_FRAMEWORKS  # noqa: E402
from envcheck.runner import run_probe  # noqa: E402


def time_to(curve: list[dict], target: float) -> dict | None:
    """The first curve point at or above ``target`` accuracy (None: never reached)."""
    for point in curve:
        if point["test_accuracy"] >= target:
            return {"seconds": point["seconds"], "images_seen": point["images_seen"]}
    return None


def bench_one(framework: str, ns: argparse.Namespace) -> dict:
    args = {"seed": ns.seed, "mixed_precision": ns.mixed_precision, "download": not ns.offline}
    for key in ("device", "data_dir", "epochs", "quick"):
        if getattr(ns, key) is not None:
            args[key] = getattr(ns, key)
    outcome = run_probe(PROBES[f"{framework}.train"].target, args, timeout=ns.timeout)
    row = {"framework": framework, "args": args, "wall_seconds": outcome.seconds}
    if not outcome.ok:
        return {**row, "ok": False, "error": outcome.describe_failure()}
    data = outcome.data
    return {
        **row,
        "ok": True,
        "time_to_99": time_to(data["accuracy_curve"], 0.99),
        "time_to_98": time_to(data["accuracy_curve"], 0.98),
        "result": data,
    }


def bench_verify(framework: str, ns: argparse.Namespace) -> dict:
    """Wall time of a whole cold `envcheck verify --framework F` (every check, every probe)."""
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "verify.json"
        cmd = [sys.executable, "-m", "envcheck", "verify", "--framework", framework]
        cmd += ["--json", str(report_path)]
        if ns.data_dir:
            cmd += ["--data-dir", ns.data_dir]
        if ns.offline:
            cmd.append("--no-download")
        start = time.perf_counter()
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        wall = time.perf_counter() - start
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return {
        "framework": framework,
        "verify_wall_seconds": wall,
        "verify_exit_code": proc.returncode,
        "verify_status": report.get("status", "no report"),
        "verify_counts": report.get("counts"),
    }


def _fmt_time(hit: dict | None) -> str:
    return "not reached" if hit is None else f"{hit['seconds']:.2f} s"


def print_row(row: dict) -> None:
    if not row["ok"]:
        print(f"{row['framework']}: FAILED after {row['wall_seconds']:.1f} s: {row['error']}")
        return
    r = row["result"]
    mode = "quick" if r["quick"] else "full"
    print(
        f"{r['framework']} {r['framework_version']} on {r['device']} ({r['device_name']}), "
        f"{mode}: {r['epochs']} epoch(s), {r['train_images']} images"
    )
    print(f"  test accuracy     {r['test_accuracy']:.4f}")
    print(f"  time to 99%       {_fmt_time(row['time_to_99'])}")
    print(f"  time to 98%       {_fmt_time(row['time_to_98'])}")
    print(f"  train             {r['train_seconds']:.2f} s, {r['images_per_second']:.0f} images/s")
    print(
        f"  first step        {r['first_step_seconds']:.2f} s   data load "
        f"{r['data_load_seconds']:.2f} s"
    )
    print(f"  wall (cold)       {row['wall_seconds']:.1f} s  (fresh process: imports included)")
    if r["mixed_precision"]:
        mp = r["mixed_precision"]
        print(
            f"  {mp['dtype']} autocast   accuracy {mp['test_accuracy']:.4f}, "
            f"train {mp['train_seconds']:.2f} s"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--framework", choices=[*KNOWN_FRAMEWORKS, "both"], default="both")
    p.add_argument("--device", help="cuda/gpu or cpu (default: GPU if the framework sees one)")
    p.add_argument("--data-dir", help="folder with the MNIST files (default: cache/download)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="quick",
        action="store_true",
        default=None,
        help="the short run (default on CPU)",
    )
    mode.add_argument(
        "--full", dest="quick", action="store_false", help="the full run (default on GPU)"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="also train once under bf16 (fp16 on old GPUs) autocast",
    )
    p.add_argument("--offline", action="store_true", help="never download MNIST")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument(
        "--verify",
        action="store_true",
        help="also time a whole cold `envcheck verify --framework F` per framework",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ns = p.parse_args(argv)

    frameworks = list(KNOWN_FRAMEWORKS) if ns.framework == "both" else [ns.framework]
    rows = []
    for framework in frameworks:
        row = bench_one(framework, ns)
        print_row(row)
        if ns.verify:
            row.update(bench_verify(framework, ns))
            print(
                f"  verify (cold)     {row['verify_wall_seconds']:.1f} s, "
                f"{row['verify_status']} (exit {row['verify_exit_code']})"
            )
        rows.append(row)
    if ns.json:
        write_atomic(ns.json, json.dumps({"runs": rows}, indent=2) + "\n")
    return 0 if all(row["ok"] and row.get("verify_exit_code", 0) == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
