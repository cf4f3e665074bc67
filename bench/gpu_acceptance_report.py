"""The GPU acceptance run's paperwork: the Markdown summary and the test fixtures.

Pure functions over plain data (step records, JSON reports, saved facts), so they are tested
on machines without a GPU; bench/gpu_acceptance.py runs the steps and calls them.

A step record is a dict: name, title, command (str), expect ("pass" or "fail"), exit_code
(None: not run or killed), seconds, ok (bool: the step did what was expected), note (why not,
or what it found), figures (dict), and for verify steps the JSON report's path as "report".
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from pathlib import Path
from typing import Any

# A fixture is a facts file (`envcheck verify --save-facts`) plus what the live run decided,
# so a test can replay the facts and compare every check's verdict with the live one.
FIXTURE_VERSION = 1
# Kept per stderr field: the end holds the framework's last words; fixtures stay small.
STDERR_KEEP = 4000

_UUID = re.compile(
    r"(GPU-|MIG-)?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
)
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"  # the fault run's made-up GPU


def _cell(value: Any) -> str:
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _span(values: list[float | None], fmt: str) -> str:
    """min-max of the measured values, or the one value; '-' when none was measured."""
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    lo, hi = min(got), max(got)
    return format(lo, fmt) if lo == hi else f"{format(lo, fmt)}-{format(hi, fmt)}"


def seed_figures(bench: dict[str, Any]) -> dict[str, Any]:
    """The README's benchmark figures from one `bench/mnist.py --json` run (one seed)."""
    run = (bench.get("runs") or [{}])[0]
    result = run.get("result") or {}
    to99 = run.get("time_to_99") or {}
    return {
        "seed": (run.get("args") or {}).get("seed"),
        "ok": bool(run.get("ok")),
        "test_accuracy": result.get("test_accuracy"),
        "train_seconds": result.get("train_seconds"),
        # with the first step (cuDNN autotuning, cuBLAS handle creation) and without it
        "time_to_99_seconds": to99.get("seconds"),
        "time_to_99_after_first_step_seconds": to99.get("seconds_after_first_step"),
        "images_per_second": result.get("images_per_second"),
        "first_step_seconds": result.get("first_step_seconds"),
        "train_wall_seconds": run.get("wall_seconds"),
        "verify_wall_seconds": run.get("verify_wall_seconds"),
        "verify_status": run.get("verify_status"),
        "device_name": result.get("device_name"),
        "framework_version": result.get("framework_version"),
    }


def failed_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for cat in report.get("categories", [])
        for c in cat.get("checks", [])
        if c.get("status") == "fail"
    ]


def verdicts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """check id -> {status, cause} as the live run decided."""
    return {
        c["id"]: {"status": c["status"], "cause": c.get("cause")}
        for cat in report.get("categories", [])
        for c in cat.get("checks", [])
    }


def render_summary(meta: dict[str, Any], steps: list[dict[str, Any]], seeds: list[dict]) -> str:
    """summary.md: the machine, every step (status, exit code, time, figures), MNIST over the
    seeds (min-max), the faults' diagnoses and the targets."""
    passed = all(s["ok"] for s in steps)
    lines = [
        f"# envcheck GPU acceptance run: {'PASSED' if passed else 'FAILED'}",
        "",
        f"- machine: {meta.get('gpu', '?')}, NVIDIA driver {meta.get('driver', '?')} "
        f"(CUDA {meta.get('driver_cuda', '?')})",
        f"- PyTorch {meta.get('torch', '?')} (CUDA {meta.get('torch_cuda', '?')}), "
        f"Python {meta.get('python', '?')}",
        f"- GPU 0 compute mode {meta.get('compute_mode') or 'unknown'}, persistence mode "
        f"{_on_off(meta.get('persistence_mode'))}",
        f"- started {meta.get('started', '?')}, {meta.get('seconds', 0):.0f} s in all (budget "
        f"{_num(meta.get('budget_seconds'), '.0f')} s; preflight "
        f"{_num(meta.get('preflight_seconds'), '.1f')} s)",
        "",
        "| step | expected | exit | result | budget s | seconds | figures / note |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        exit_code = "-" if s.get("exit_code") is None else s["exit_code"]
        result = "ok" if s["ok"] else "**NOT OK**"
        figures = ", ".join(
            f"{k} {v}" for k, v in (s.get("figures") or {}).items() if v not in (None, "")
        )
        note = "; ".join(x for x in (figures, s.get("note")) if x)
        lines.append(
            f"| {_cell(s['title'])} | {s['expect']} | {exit_code} | {result} | "
            f"{_num(s.get('budget'), '.0f')} | {_num(s.get('seconds'), '.1f')} | {_cell(note)} |"
        )
    lines += ["", "Commands:", ""]
    lines += [f"- {s['name']}: `{s['command']}`" for s in steps]
    if seeds:
        lines += [
            "",
            "## MNIST, PyTorch on the GPU (bench/mnist.py --full, one row per seed)",
            "",
            "| seed | test accuracy | training s | to 99% s | to 99% s without first step | "
            "images/s | first step s | cold training wall s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = [
            ("test_accuracy", ".2%"),
            ("train_seconds", ".2f"),
            ("time_to_99_seconds", ".2f"),
            ("time_to_99_after_first_step_seconds", ".2f"),
            ("images_per_second", ",.0f"),
            ("first_step_seconds", ".2f"),
            ("train_wall_seconds", ".1f"),
        ]
        for seed in seeds:
            cells = " | ".join(_num(seed.get(k), f) for k, f in rows)
            lines.append(f"| {seed.get('seed')} | {cells} |")
        spans = " | ".join(_span([s.get(k) for s in seeds], f) for k, f in rows)
        lines.append(f"| min-max | {spans} |")
        lines += [
            "",
            "to 99% s counts the first step (cuDNN autotuning, cuBLAS handle creation), as the "
            "benchmark table (docs/benchmark.md) does; the column after it leaves the first step "
            "out.",
        ]
    lines += ["", *targets(seeds, meta.get("cold_verify_seconds"))]
    faults = [s for s in steps if s["expect"] == "fail" and s.get("failed_checks")]
    if faults:
        lines += ["", "## Faults: what verify said", ""]
        for s in faults:
            lines.append(f"- **{s['title']}**")
            for c in s["failed_checks"]:
                lines.append(
                    f"  - `{c['id']}`: {_cell(c.get('message'))}. Cause: "
                    f"{_cell(c.get('cause'))}. Fix: {_cell(c.get('fix'))}"
                )
    return "\n".join(lines) + "\n"


def _on_off(value: Any) -> str:
    return "unknown" if value is None else ("on" if value else "off")


def targets(seeds: list[dict], cold_verify_seconds: float | None = None) -> list[str]:
    """The issue's targets, measured (met or missed), never asserted. The cold verify is the
    run's one whole cold `envcheck verify` (its pass step)."""
    to99 = [s.get("time_to_99_seconds") for s in seeds]
    to99_rest = [s.get("time_to_99_after_first_step_seconds") for s in seeds]
    accs = [s.get("test_accuracy") for s in seeds]

    def verdict(values: list, bar: float, better: str) -> str:
        got = [v for v in values if v is not None]
        if len(got) < len(values) or not got:
            return "missed (not reached in every seed)" if values else "not measured"
        worst = max(got) if better == "low" else min(got)
        met = worst <= bar if better == "low" else worst >= bar
        return "met" if met else "missed"

    verify = [] if cold_verify_seconds is None else [cold_verify_seconds]
    return [
        "Targets (worst seed):",
        "",
        f"- test accuracy >= 99.0%: {verdict(accs, 0.99, 'high')}",
        f"- 99% within 0.5 s of training, first step included: {verdict(to99, 0.5, 'low')} "
        f"(moonshot 0.25 s: {verdict(to99, 0.25, 'low')})",
        f"- 99% within 0.5 s of training, first step left out: {verdict(to99_rest, 0.5, 'low')} "
        f"(moonshot 0.25 s: {verdict(to99_rest, 0.25, 'low')})",
        f"- cold `envcheck verify --framework torch` <= 10 s: {verdict(verify, 10.0, 'low')}"
        + ("" if cold_verify_seconds is None else f" ({cold_verify_seconds:.1f} s)"),
    ]


# ------------------------------------------------------------------- fixtures


def host_secrets() -> dict[str, str]:
    """What names this host or its user: each maps to the placeholder that replaces it."""
    out = {}
    home = str(Path.home())
    if len(home) > 1:
        out[home] = "/home/user"
    for name in {socket.gethostname(), socket.getfqdn()}:
        if name and len(name) >= 3 and name != "localhost":
            out[name] = "host"
    return out


def scrub(value: Any, secrets: dict[str, str], uuids: dict[str, str] | None = None) -> Any:
    """``value`` with host names, the home folder, the user and GPU UUIDs replaced.

    UUIDs map to stable placeholders in the order first seen, so the same GPU keeps one
    name across the facts (NVML's GPU-..., torch's bare form); the all-zero UUID that the
    fault run made up stays as it is. Long stderr fields keep their end.
    """
    uuids = {} if uuids is None else uuids
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("stderr", "stderr_tail") and isinstance(v, str):
                v = v[-STDERR_KEEP:]
            out[k] = scrub(v, secrets, uuids)
        return out
    if isinstance(value, list):
        return [scrub(v, secrets, uuids) for v in value]
    if not isinstance(value, str):
        return value
    text = value
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, secrets[secret])
    user = _user()
    if user:
        text = re.sub(rf"(?<=/){re.escape(user)}(?=/|$)", "user", text)

    def stand_in(m: re.Match) -> str:
        bare = m.group(2).lower()
        if bare == _ZERO_UUID:
            return m.group(0)
        if bare not in uuids:
            uuids[bare] = f"{len(uuids) + 1:08x}-1111-2222-3333-444444444444"
        return (m.group(1) or "") + uuids[bare]

    return _UUID.sub(stand_in, text)


def _user() -> str | None:
    try:
        name = getpass.getuser()
    except Exception:
        return None
    return name if name and len(name) >= 3 else None


def leaks(value: Any, secrets: dict[str, str]) -> list[str]:
    """Host names or paths still in ``value`` after scrubbing (must be none)."""
    text = json.dumps(value)
    return [s for s in secrets if s in text]


def make_fixture(
    run: str, facts: dict[str, Any], report: dict[str, Any], secrets: dict[str, str]
) -> dict[str, Any]:
    """A replayable fixture: the saved facts, scrubbed, and the live run's verdicts."""
    uuids: dict[str, str] = {}
    return {
        "fixture_version": FIXTURE_VERSION,
        "run": run,
        "profile": report.get("profile"),
        "frameworks": report.get("frameworks"),
        "require_gpu": report.get("require_gpu"),
        "exit_code": report.get("exit_code"),
        "verdicts": scrub(verdicts(report), secrets, uuids),
        "facts": scrub(facts.get("facts", {}), secrets, uuids),
    }


def write_fixture(
    run: str, facts_path: Path, report_path: Path, out_path: Path, secrets: dict[str, str]
) -> list[str]:
    """Write the fixture of one verify run, unless scrubbing left a host name in it.

    Returns what leaked (empty: written). Raises OSError/ValueError on unreadable inputs.
    """
    facts = json.loads(Path(facts_path).read_text(encoding="utf-8"))
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    fixture = make_fixture(run, facts, report, secrets)
    leaked = leaks(fixture, secrets)
    if not leaked:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return leaked


def slug(gpu_name: str) -> str:
    """'NVIDIA H200' -> 'h200': the fixture's file prefix names the GPU model only."""
    name = re.sub(r"^nvidia\s+", "", gpu_name.strip(), flags=re.IGNORECASE).lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "gpu"


def main(argv: list[str] | None = None) -> int:
    """python bench/gpu_acceptance_report.py fixture NAME FACTS.json REPORT.json OUT.json

    Makes one fixture from a verify run's --save-facts and --json files (what
    bench/gpu_acceptance.py does for each of its verify steps).
    """
    import argparse
    import sys

    p = argparse.ArgumentParser(description="make a replayable, scrubbed facts fixture")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixture")
    f.add_argument("name")
    f.add_argument("facts", type=Path)
    f.add_argument("report", type=Path)
    f.add_argument("out", type=Path)
    ns = p.parse_args(argv)
    try:
        leaked = write_fixture(ns.name, ns.facts, ns.report, ns.out, host_secrets())
    except (OSError, ValueError) as exc:
        print(f"gpu_acceptance_report: cannot read the run's files: {exc}", file=sys.stderr)
        return 1
    if leaked:
        print(
            f"gpu_acceptance_report: {len(leaked)} host name(s) left; not written", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
