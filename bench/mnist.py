"""Benchmark verify's MNIST training step: time to 99% / 98%, throughput, cold wall time.

Each run is a fresh interpreter through envcheck's runner (imports, data load, graph
build and training all included in ``wall_seconds``), exactly as verify runs it.

    python bench/mnist.py                          # both frameworks, GPU if any, else CPU
    python bench/mnist.py --framework torch --device cpu --full --json out.json
    python bench/mnist.py --framework torch --verify   # also time a whole cold `verify`

The benchmark table of docs/benchmark.md is derived from recorded runs (see readme_table.py):

    python bench/mnist.py --device cpu --quick --seeds 0-3 --record bench/results/cpu.json
    python bench/mnist.py --table                  # rewrite the table from bench/results/
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from envcheck.training import time_to  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import readme_table  # noqa: E402


def seed_list(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '0,2' -> [0, 2]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed list like 0-3 or 0,2") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def bench_one(framework: str, seed: int, ns: argparse.Namespace) -> dict:
    args = {"seed": seed, "mixed_precision": ns.mixed_precision, "download": not ns.offline}
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
    if hit is None:
        return "not reached"
    after = hit.get("seconds_after_first_step")
    rest = "" if after is None else f" ({after:.2f} s without the first step)"
    return f"{hit['seconds']:.2f} s{rest}"


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


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument(
        "--seeds",
        "--seed",
        type=seed_list,
        default=[0],
        metavar="LIST",
        help="seeds to run, e.g. 0 or 0-3 or 0,2 (default 0)",
    )
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
        help="also time a whole cold `envcheck verify --framework F` per framework and seed",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="store the runs' figures in FILE (bench/results/NAME.json) and rewrite the "
        "docs/benchmark.md table from bench/results/",
    )
    p.add_argument("--machine", help="the machine, as the table names it (with --record)")
    p.add_argument(
        "--table",
        action="store_true",
        help="run nothing: rewrite the docs/benchmark.md table from bench/results/ and print it",
    )
    return p


def write_table() -> str:
    """Rewrite the benchmark table of docs/benchmark.md from bench/results/*.json; return it."""
    table = readme_table.render(readme_table.load_all())
    text = readme_table.PAGE.read_text(encoding="utf-8")
    write_atomic(readme_table.PAGE, readme_table.splice(text, table))
    return table


def default_machine(rows: list[dict]) -> str:
    names = sorted({r["result"].get("device_name") or r["result"]["device"] for r in rows})
    return f"{', '.join(names)}, {os.cpu_count()} CPU cores visible"


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.table:
        print(write_table(), end="")
        return 0
    if ns.record is not None and ns.record.suffix != ".json":
        print(f"bench: --record takes a .json file, not {ns.record}", file=sys.stderr)
        return 2

    frameworks = list(KNOWN_FRAMEWORKS) if ns.framework == "both" else [ns.framework]
    rows = []
    for framework in frameworks:
        for i, seed in enumerate(ns.seeds):
            row = bench_one(framework, seed, ns)
            print(f"seed {seed}: ", end="")
            print_row(row)
            if not row["ok"] and i + 1 < len(ns.seeds):
                # a run that fails (no GPU, no data, a crash) fails the same for every seed:
                # say it once, not once per seed
                rest = ", ".join(str(s) for s in ns.seeds[i + 1 :])
                print(f"seeds {rest}: {framework}: not run: seed {seed} failed (see above)")
                rows.append(row)
                break
            if ns.verify:
                row.update(bench_verify(framework, ns))
                print(
                    f"  verify (cold)     {row['verify_wall_seconds']:.1f} s, "
                    f"{row['verify_status']} (exit {row['verify_exit_code']})"
                )
            rows.append(row)
    if ns.json:
        write_atomic(ns.json, json.dumps({"runs": rows}, indent=2) + "\n")
    ok = all(row["ok"] and row.get("verify_exit_code", 0) == 0 for row in rows)
    measured = [r for r in rows if r["ok"]]
    if measured:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        summaries = [readme_table.summarize(r, now) for r in measured]
        recorded = ns.record is not None and ns.record.is_file()
        machine = ns.machine or (readme_table.load(ns.record)["machine"] if recorded else None)
        data = {"machine": machine or default_machine(measured), "runs": summaries}
        print()
        print(readme_table.render([data]), end="")
    if ns.record is not None:
        if not ok:
            print("bench: a run failed; nothing recorded", file=sys.stderr)
            return 1
        merged = readme_table.record(ns.record, data["machine"], summaries)
        write_atomic(ns.record, json.dumps(merged, indent=2) + "\n")
        write_table()
        print(f"bench: recorded in {ns.record}; docs/benchmark.md table rewritten")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
