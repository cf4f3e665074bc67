"""Where a cold `envcheck verify` spends its time, probe by probe.

Runs one cold verify (a fresh `python -m envcheck verify`) and prints, per probe, the split
of its wall time: interpreter start, framework import, device/context init, data loading,
the work itself, evaluation and the rest; then the total, the ratio target (the verify's
wall time as a multiple of one cold `python -c "import torch"` timed in the same run) and
how many processes imported each framework.

    python bench/verify_speed.py --framework torch --data-dir /path/to/mnist
    python bench/verify_speed.py --framework torch,tensorflow --data-dir D \\
        --label after --record bench/results/verify-speed/cpu-2core.json
    python bench/verify_speed.py --table      # rewrite docs/verify-speed.md from the records

Framework imports are counted by bench/importlog/sitecustomize.py, which this script puts
first on PYTHONPATH: every interpreter the verify starts (workers, torchrun, its ranks)
logs its torch / tensorflow import. Targets are printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results" / "verify-speed"
DOC = ROOT / "docs" / "verify-speed.md"
BEGIN = "<!-- bench/verify_speed.py table: begin (python bench/verify_speed.py --table) -->"
END = "<!-- bench/verify_speed.py table: end -->"
PHASES = ("start", "import", "init", "data", "work", "eval", "other")
RATIO_TARGET = 8.0
# The absolute targets, for a quiet 2-core machine.
WALL_TARGETS = {"torch": 12.0, "tensorflow,torch": 30.0}


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cold_import(framework: str) -> float:
    """Wall seconds of one fresh `python -c "import <framework>"`."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {framework}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.monotonic() - start


def read_import_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def import_counts(processes: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in processes:
        for fw in p["imports"]:
            counts[fw] = counts.get(fw, 0) + 1
    return counts


def _processes_of(target: str, processes: list[dict]) -> list[dict]:
    """The processes one probe started (before the probe host: one worker per probe)."""
    if target.startswith("envcheck.distributed"):
        keys = ("envcheck.distributed", "torch/distributed/run.py", "envcheck/distributed/")
    else:
        keys = (target,)
    return [p for p in processes if any(k in a for a in p["argv"] for k in keys)]


def split_recorded(outcome: dict) -> dict[str, float]:
    """The split the probe host recorded (outcome["timing"])."""
    timing = outcome.get("timing") or {}
    split = {k: float(timing.get(k) or 0.0) for k in PHASES}
    split["other"] = max(0.0, outcome["seconds"] - sum(split[k] for k in PHASES if k != "other"))
    return split


def split_derived(outcome: dict, processes: list[dict]) -> dict[str, float]:
    """For records made before the probe host: the split from the import log and the probe's
    own figures (data load, training); what cannot be told apart is "other"."""
    total = outcome["seconds"]
    split = dict.fromkeys(PHASES, 0.0)
    mine = _processes_of(outcome.get("target", ""), processes)
    if mine:
        first = min(mine, key=lambda p: p["site"])
        imports = [p["imports"][fw] for p in mine for fw in p["imports"]]
        if imports:
            # ranks import side by side: count the launcher's import plus the longest rank's
            starts = sorted(imports)
            split["import"] = (
                starts[0][1] - starts[0][0] + max((e - s for s, e in starts[1:]), default=0.0)
            )
            split["start"] = starts[0][0] - first["site"]
    data = outcome.get("data") or {}
    split["data"] = float(data.get("data_load_seconds") or 0.0)
    if "train_seconds" in data:
        split["work"] = float(data["train_seconds"]) + float(data.get("first_step_seconds") or 0)
        split["eval"] = float(data.get("eval_seconds") or 0.0)
    split["other"] = max(0.0, total - sum(split.values()))
    if "train_seconds" not in data:
        split["work"], split["other"] = split["other"], 0.0
    return split


def run_verify(frameworks: str, data_dir: str | None, timeout: float, tree: Path = ROOT) -> dict:
    with tempfile.TemporaryDirectory(prefix="verify-speed-") as tmp:
        log = Path(tmp, "imports.jsonl")
        facts = Path(tmp, "facts.json")
        report = Path(tmp, "report.json")
        env = dict(os.environ, ENVCHECK_BENCH_IMPORT_LOG=str(log))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "bench" / "importlog"), str(tree), env.get("PYTHONPATH")) if p
        )
        cmd = [sys.executable, "-m", "envcheck", "verify", "--expect", "cpu", "--framework",
               frameworks, "--json", str(report), "--save-facts", str(facts)]  # fmt: skip
        if data_dir:
            cmd += ["--data-dir", data_dir]
        start = time.monotonic()
        proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        wall = time.monotonic() - start
        processes = read_import_log(log)
        recorded = json.loads(facts.read_text()) if facts.is_file() else {"facts": {}}
        rep = json.loads(report.read_text()) if report.is_file() else {}
    probes = {}
    for name, outcome in recorded["facts"].items():
        split = (
            split_recorded(outcome) if outcome.get("timing") else split_derived(outcome, processes)
        )
        probes[name] = {
            "seconds": round(outcome["seconds"], 3),
            "ok": outcome["ok"],
            "isolation": outcome.get("isolation"),
            "split": {k: round(v, 3) for k, v in split.items()},
        }
    checks = [c for cat in rep.get("categories", []) for c in cat.get("checks", [])]
    training = {
        c["id"]: (c.get("figures") or {}).get("test_accuracy")
        for c in checks
        if c["id"].startswith("training.")
    }
    return {
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 2),
        "import_counts": import_counts(processes),
        "probes": probes,
        "verdicts": {c["id"]: c["status"] for c in checks},
        "training_accuracy": training,
        "stderr_tail": proc.stderr[-600:] if proc.returncode else "",
    }


def git_commit(tree: Path = ROOT) -> str:
    marker = tree / "COMMIT"  # a `git archive` of an older commit, as --tree takes it
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip()[:12]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def measure(
    frameworks: str, data_dir: str | None, label: str, timeout: float, tree: Path = ROOT
) -> dict:
    fws = ",".join(sorted(f.strip() for f in frameworks.split(",") if f.strip()))
    load_before = load_average()
    import_s = cold_import("torch") if "torch" in fws else cold_import(fws.split(",")[0])
    run = run_verify(fws, data_dir, timeout, tree)
    return {
        "label": label,
        "commit": git_commit(tree),
        "frameworks": fws,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average": [load_before, load_average()],
        "cold_import_seconds": round(import_s, 2),
        "ratio": round(run["wall_seconds"] / import_s, 1),
        **run,
    }


def render_run(run: dict) -> str:
    lines = [
        f"{run['label']} ({run['commit']}), frameworks {run['frameworks']}, 1-minute load "
        f"{run['load_average'][0]} -> {run['load_average'][1]}, exit code {run['exit_code']}",
        "",
        "| probe | " + " | ".join(PHASES) + " | total |",
        "|---|" + "---|" * (len(PHASES) + 1),
    ]
    for name, p in sorted(run["probes"].items()):
        cells = [f"{p['split'][k]:.2f}" if p["split"][k] >= 0.005 else "" for k in PHASES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {p['seconds']:.2f} |")
    counts = ", ".join(f"{k} x{v}" for k, v in sorted(run["import_counts"].items()))
    # the training steps scale with the machine's load; what is left is verify's overhead
    training = sum(p["split"]["work"] for n, p in run["probes"].items() if n.endswith(".train"))
    target = WALL_TARGETS.get(run["frameworks"])
    # the compile category came after the targets were set: reported on its own line
    compiling = sum(p["seconds"] for n, p in run["probes"].items() if "compile" in n)
    lines += [
        "",
        f"- cold verify wall: **{run['wall_seconds']:.1f} s**"
        + (f" (target on a quiet machine: <= {target:.0f} s)" if target else ""),
        *(
            [f"- compile probes: {compiling:.1f} s (their own category, not in the targets)"]
            if compiling
            else []
        ),
        f"- wall outside the training steps: {run['wall_seconds'] - training:.1f} s "
        f"(training steps {training:.1f} s)",
        f'- cold `python -c "import torch"`: {run["cold_import_seconds"]:.2f} s; ratio '
        f"**{run['ratio']:.1f}x** (target <= {RATIO_TARGET:.0f}x for a torch-only verify)",
        f"- framework imports (processes): {counts or 'none logged'}",
        "- training accuracy: "
        + (", ".join(f"{k} {v:.2%}" for k, v in run["training_accuracy"].items() if v) or "-"),
    ]
    return "\n".join(lines) + "\n"


def record(path: Path, run: dict) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {"machine": machine(), "runs": []}
    data["runs"].append(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def machine() -> str:
    sys.path.insert(0, str(ROOT))
    from envcheck.training import cpu_name

    return f"{cpu_name()}, {platform.system()}, Python {platform.python_version()}"


def table(results_dir: Path = RESULTS_DIR) -> str:
    """The doc's tables: per results file, its machine, then each recorded run."""
    out = []
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out.append(f"Measured on {data['machine']} (`{path.relative_to(ROOT)}`):\n")
        out.extend(render_run(run) for run in data["runs"])
    return "\n".join(out)


def splice(text: str, body: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}")
    return text[: start + len(BEGIN)] + "\n" + body + text[end:]


def current(text: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    return text[start + len(BEGIN) + 1 : end]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framework", default="torch", help="comma list (default torch)")
    ap.add_argument("--data-dir", help="MNIST directory (else $ENVCHECK_DATA_DIR)")
    ap.add_argument("--label", default="now", help="what this run measures, e.g. before/after")
    ap.add_argument("--record", type=Path, help="append the run to this results file")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--table", action="store_true", help="only rewrite docs/verify-speed.md")
    ap.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="measure the envcheck of another checkout (e.g. `git archive` of an older commit "
        "with its hash in a file COMMIT), to compare before/after at the same machine load",
    )
    ns = ap.parse_args()
    if not ns.table:
        run = measure(ns.framework, ns.data_dir, ns.label, ns.timeout, ns.tree.resolve())
        print(render_run(run))
        if ns.record:
            record(ns.record, run)
    if ns.table or ns.record:
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), table()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
