"""`envcheck lock`: audit pixi.lock against pixi.toml offline (and optionally the active env).

Only argparse is imported at module level so that building the CLI stays cheap; py-rattler
and rich load when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import EnvcheckError
from ..guard import check_output, printing_survives, write_output

MAX_ROWS = 40  # findings shown in the table; --json has them all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        metavar="PATH",
        default="pixi.toml",
        help="workspace manifest (default: ./pixi.toml)",
    )
    parser.add_argument(
        "--lock",
        metavar="PATH",
        default=None,
        help="lock file (default: pixi.lock next to the manifest)",
    )
    parser.add_argument(
        "--env",
        metavar="NAME",
        action="append",
        default=None,
        help="audit only this environment (repeatable; default: all)",
    )
    parser.add_argument(
        "--sizes", action="store_true", help="show the download size of each environment x platform"
    )
    parser.add_argument(
        "--drift",
        action="store_true",
        help="also compare the active environment ($CONDA_PREFIX) with the lock",
    )
    parser.add_argument(
        "--json", metavar="FILE", default=None, help="write findings (and sizes) as JSON to FILE"
    )


def run(args: argparse.Namespace) -> int:
    """0: clean (warnings allowed); 1: at least one error finding."""
    from rich.console import Console

    from .core import audit, default_lock_for, sizes
    from .drift import choose_lock_env, drift_findings, drift_skip_reason
    from .findings import has_errors

    check_output(args.json, "--json")  # before the audit, not after it
    lock_path = Path(args.lock) if args.lock else default_lock_for(args.manifest)
    result = audit(args.manifest, lock_path, args.env)
    findings = list(result.findings)

    drift: dict[str, Any] | None = None
    if args.drift:
        prefix = os.environ.get("CONDA_PREFIX")
        reason = drift_skip_reason(lock_path, prefix)
        if reason:
            raise EnvcheckError(f"--drift: {reason}; run it inside `pixi run --locked -e <env>`")
        env_name = args.env[0] if args.env and len(args.env) == 1 else None
        if env_name is None:
            choice = choose_lock_env(lock_path, prefix)
            if choice.env is None:
                raise EnvcheckError(f"--drift: {choice.reason}")
            env_name = choice.env
        found = drift_findings(lock_path, prefix, env_name)
        drift = {"prefix": prefix, "findings": len(found)}
        findings += found

    size_rows = sizes(result.lock, result.envs, result.manifest) if args.sizes else []
    if args.json:  # written before the table: a closed stdout must not lose it
        _write_json(Path(args.json), result, findings, size_rows, drift)
    console = Console(highlight=False, soft_wrap=False)
    printing_survives(lambda: _render(console, result, findings, size_rows, drift))
    return 1 if has_errors(findings) else 0


def _render(console: Any, result: Any, findings: list, size_rows: list, drift: Any) -> None:
    from rich import box
    from rich.table import Table

    from ..guard import safe_text
    from .core import human_size

    if size_rows:
        table = Table(box=box.SIMPLE, title="download size", title_justify="left")
        for col in ("env", "platform", "records", "size"):
            table.add_column(col, justify="right" if col in ("records", "size") else "left")
        for row in size_rows:
            size = human_size(row.bytes) + (f" (+{row.unknown} unknown)" if row.unknown else "")
            table.add_row(safe_text(row.env), safe_text(row.platform), str(row.records), size)
        console.print(table)
    if findings:
        table = Table(box=box.SIMPLE)
        for col in ("severity", "env", "platform", "package", "message"):
            table.add_column(col, overflow="fold")
        # Policy findings first within an env x platform: they usually name the root cause
        # (a CPU build, a wrong CUDA line) of the satisfiability errors that follow from it.
        severity = {"error": 0, "warning": 1}
        check = {"lock": 0, "policy": 1}
        ranked = sorted(
            findings,
            key=lambda f: (severity.get(f.severity, 2), f.env, f.platform, check.get(f.check, 2)),
        )
        for f in ranked[:MAX_ROWS]:
            # Text, not markup: specs such as pytorch[build="cuda12*"] look like rich tags.
            style = "red" if f.severity == "error" else "yellow"
            table.add_row(
                safe_text(f.severity, style=style),
                safe_text(f.env),
                safe_text(f.platform),
                safe_text(f.package),
                safe_text(f.message),
            )
        console.print(table)
        if len(findings) > MAX_ROWS:
            console.print(f"... and {len(findings) - MAX_ROWS} more (--json FILE lists all)")
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    records = sum(result.counts.values())
    scope = (
        f"{result.lock.path.name} vs {result.manifest.path.name}: {len(result.envs)} envs, "
        f"{len(result.counts)} env x platforms, {records} records"
    )
    if drift:
        scope += f", drift of {drift['prefix']}"
    line = safe_text(f"{scope}: ")
    if findings:
        line.append(f"{errors} errors, {warnings} warnings", style="red" if errors else "yellow")
    else:
        line.append("OK", style="green")
    line.append(f" ({result.seconds:.2f} s)")
    console.print(line)


def _write_json(path: Path, result: Any, findings: list, size_rows: list, drift: Any) -> None:
    doc = {
        "schema_version": 1,
        "manifest": str(result.manifest.path),
        "lock": str(result.lock.path),
        "envs": result.envs,
        "records": result.counts,
        "seconds": round(result.seconds, 3),
        "status": "fail" if any(f.severity == "error" for f in findings) else "pass",
        "findings": [f.to_dict() for f in findings],
        "sizes": [vars(r) for r in size_rows],
        "drift": drift,
    }
    write_output(path, json.dumps(doc, indent=2) + "\n", "--json")
