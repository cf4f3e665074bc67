"""The docs' benchmark table (docs/benchmark.md), derived from recorded runs (bench/results/*.json).

`bench/mnist.py --record FILE` stores one summary per run (framework, device, mode, seed,
figures) in FILE and rewrites the table between the markers in docs/benchmark.md;
`bench/mnist.py --table` rewrites it from the recorded files alone. tests/test_readme.py
regenerates it and compares, so the published figures always come from a recorded measurement.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
# the page that holds the table
PAGE = ROOT / "docs" / "benchmark.md"
BEGIN = "<!-- bench/mnist.py table: begin (regenerate: python bench/mnist.py --table) -->"
END = "<!-- bench/mnist.py table: end -->"
FRAMEWORK_LABEL = {"torch": "PyTorch", "tensorflow": "TensorFlow"}
COLUMNS = (
    "framework",
    "device",
    "mode",
    "seeds",
    "test accuracy",
    "training",
    "to 99%",
    "images/s",
    "first step",
    "cold run",
    "cold verify",
)


def summarize(row: dict, measured_at: str) -> dict:
    """The figures of one bench run (bench_one [+ bench_verify]) that the table needs."""
    r = row["result"]
    return {
        "framework": row["framework"],
        "framework_version": r["framework_version"],
        "device": r["device"],
        "device_name": r.get("device_name"),
        "mode": "quick" if r["quick"] else "full",
        "epochs": r["epochs"],
        "train_images": r["train_images"],
        "seed": r["seed"],
        "test_accuracy": r["test_accuracy"],
        "train_seconds": r["train_seconds"],
        # the table's "to 99%" counts the first step (cuDNN autotuning, cuBLAS handles)
        "time_to_99_seconds": (row["time_to_99"] or {}).get("seconds"),
        "time_to_99_after_first_step_seconds": (row["time_to_99"] or {}).get(
            "seconds_after_first_step"
        ),
        "images_per_second": r["images_per_second"],
        "first_step_seconds": r["first_step_seconds"],
        "data_load_seconds": r["data_load_seconds"],
        "cold_run_seconds": row["wall_seconds"],
        "verify_wall_seconds": row.get("verify_wall_seconds"),
        "measured_at": measured_at,
        # how busy the machine was (1-minute load average at the end of the run): figures
        # from a shared machine are only comparable at a similar load
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
    }


def record(path: Path, machine: str, runs: list[dict]) -> dict:
    """Merge ``runs`` into the results file: they replace the file's runs of the same
    framework, device, mode and seed (a re-measurement), others stay, so the seeds of a row
    can be measured one invocation at a time."""
    old = load(path) if path.is_file() else {"machine": machine, "runs": []}
    keys = {(*_key(r), r["seed"]) for r in runs}
    kept = [r for r in old["runs"] if (*_key(r), r["seed"]) not in keys]
    return {"machine": machine, "runs": sorted(kept + runs, key=_order)}


def load(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ValueError(f"{path} is not a bench results file (no 'runs' list)")
    return data


def _key(run: dict) -> tuple[str, str, str]:
    return run["framework"], run["device"], run["mode"]


def _order(run: dict) -> tuple:
    fw = list(FRAMEWORK_LABEL).index(run["framework"]) if run["framework"] in FRAMEWORK_LABEL else 9
    return (run["device"], run["mode"] != "quick", fw, run["seed"])


def _span(values: list[float | None], fmt: str, unit: str = "") -> str:
    if not values:
        return ""
    if any(v is None for v in values):
        return "not reached" if all(v is None for v in values) else "not always"
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return (lo if lo == hi else f"{lo}-{hi}") + unit


def table_rows(runs: list[dict]) -> list[list[str]]:
    groups: dict[tuple, list[dict]] = {}
    for run in sorted(runs, key=_order):
        groups.setdefault(_key(run), []).append(run)
    rows = []
    for (framework, device, mode), group in groups.items():
        first = group[0]
        seeds = sorted(r["seed"] for r in group)
        consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
        seed_text = f"{seeds[0]}-{seeds[-1]}" if consecutive else ",".join(map(str, seeds))
        verify = [r["verify_wall_seconds"] for r in group if r.get("verify_wall_seconds")]
        rows.append(
            [
                f"{FRAMEWORK_LABEL.get(framework, framework)} {first['framework_version']}",
                first.get("device_name") or device,
                f"{mode} ({round(first['train_images'] / 1000)}k images, {first['epochs']} epoch"
                + ("s)" if first["epochs"] > 1 else ")"),
                seed_text if len(seeds) > 1 else str(seeds[0]),
                _span([100 * r["test_accuracy"] for r in group], "{:.2f}", "%"),
                _span([r["train_seconds"] for r in group], "{:.1f}", " s"),
                _span([r["time_to_99_seconds"] for r in group], "{:.2f}", " s"),
                _span([r["images_per_second"] for r in group], "{:,.0f}"),
                _span([r["first_step_seconds"] for r in group], "{:.2f}", " s"),
                _span([r["cold_run_seconds"] for r in group], "{:.1f}", " s"),
                _span(verify, "{:.1f}", " s") if verify else "",
            ]
        )
    return rows


def render(results: list[dict]) -> str:
    """Markdown: per results file, the machine line, then one row per framework x device x
    mode with min-max over its seeds."""
    out = []
    for data in results:
        loads = [r["load_average"] for r in data["runs"] if r.get("load_average") is not None]
        busy = f" (1-minute load average {_span(loads, '{:.1f}')})" if loads else ""
        out.append(f"Measured on {data['machine']}{busy}:")
        out.append("")
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "---|" * len(COLUMNS))
        out.extend("| " + " | ".join(row) + " |" for row in table_rows(data["runs"]))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def load_all(results_dir: Path = RESULTS_DIR) -> list[dict]:
    return [load(p) for p in sorted(results_dir.glob("*.json"))]


def splice(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} lacks the markers {BEGIN!r} ... {END!r}")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


def current(text: str) -> str:
    """The table now between the markers."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} lacks the markers {BEGIN!r} ... {END!r}")
    return text[start + len(BEGIN) + 1 : end]
