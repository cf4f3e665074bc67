"""`envcheck doctor`: which environment of the lock fits this machine, before installing any.

Standard library only (rich is used when present): it runs from a checkout with any
Python >= 3.9 and nothing installed, and never imports a framework.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import EnvcheckError

MAX_FACTS_BYTES = 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--framework",
        metavar="LIST",
        help="prefer an env with these frameworks (comma list: torch,tensorflow)",
    )
    parser.add_argument(
        "--lock",
        metavar="PATH",
        default=None,
        help="the workspace lock (default: pixi.lock here or in a parent folder, else the "
        "checkout's)",
    )
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the answer as JSON")
    # Replay another machine's facts (a --json answer or its "facts"): for tests and support.
    parser.add_argument(
        "--facts",
        metavar="FILE",
        type=Path,
        help="judge another machine: the facts of its `doctor --json` answer instead of this one's",
    )


def _wanted(option: str | None) -> tuple[str, ...]:
    if not option:
        return ()
    from ..profiles import PROFILES, resolve_frameworks

    return resolve_frameworks(option, PROFILES["cpu"])


def load_facts(path: Path) -> dict[str, Any]:
    """Another machine's facts (a doctor --json answer, or its "facts"), bounded and
    shape-checked: one line naming the field that does not fit."""
    from ..guard import load_file, plain
    from ..shapes import ShapeError, check_doctor_facts

    fix = "pass a file written by `envcheck doctor --json`"
    data = load_file(path, "json", MAX_FACTS_BYTES, "--facts", fix)
    facts = data.get("facts", data) if isinstance(data, dict) else data
    try:
        check_doctor_facts(facts)
    except ShapeError as exc:
        raise EnvcheckError(f"--facts {path}: {plain(str(exc))}; {fix}") from None
    if facts.get("nvml") is None:
        facts["nvml"] = {"available": False, "reason": "not_recorded"}
    return facts


def run(args: argparse.Namespace) -> int:
    from ..guard import check_output, printing_survives, write_output
    from .facts import gather_facts
    from .judge import diagnose_machine
    from .render import render
    from .workspace import find_lock, read_workspace

    check_output(args.json, "--json")
    wanted = _wanted(args.framework)
    workspace = read_workspace(find_lock(args.lock))
    facts = load_facts(args.facts) if args.facts else gather_facts()
    answer = diagnose_machine(facts, workspace, wanted)
    if args.json:  # written first: a closed stdout (`| head`) must not lose it
        write_output(args.json, json.dumps(answer, indent=2) + "\n", "--json")
    printing_survives(lambda: render(answer))
    return answer["exit_code"]
