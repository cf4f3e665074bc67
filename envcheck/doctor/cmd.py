"""`envcheck doctor`: which environment of the lock fits this machine, before installing any.

Standard library only (rich is used when present): it runs from a checkout with any
Python >= 3.9 and nothing installed, and never imports a framework.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _check_output(path: Path | None) -> None:
    """An output that cannot be written is a usage error, said before any work."""
    if path is None:
        return
    if path.is_dir():
        raise EnvcheckError(f"--json {path} is a directory; give a file path", exit_code=2)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EnvcheckError(
            f"--json {path}: folder {parent} does not exist; create it or pick another path",
            exit_code=2,
        )
    if not os.access(parent, os.W_OK):
        raise EnvcheckError(f"--json {path}: folder {parent} is not writable", exit_code=2)


def _wanted(option: str | None) -> tuple[str, ...]:
    if not option:
        return ()
    from ..profiles import PROFILES, resolve_frameworks

    return resolve_frameworks(option, PROFILES["cpu"])


def load_facts(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_FACTS_BYTES:
            raise EnvcheckError(f"--facts {path} is larger than 1 MiB; not a facts file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnvcheckError(f"--facts {path}: {exc.strerror}", exit_code=2) from None
    except ValueError as exc:
        raise EnvcheckError(
            f"--facts {path} is not JSON ({exc}); pass a doctor --json file"
        ) from None
    facts = data.get("facts", data) if isinstance(data, dict) else None
    if not isinstance(facts, dict) or not isinstance(facts.get("platform"), dict):
        raise EnvcheckError(f"--facts {path} has no 'platform' facts; pass a doctor --json file")
    for key in ("system", "machine", "subdir"):
        if not isinstance(facts["platform"].get(key), str):
            raise EnvcheckError(f"--facts {path}: platform.{key} is missing")
    facts.setdefault("nvml", {"available": False, "reason": "not_recorded"})
    return facts


def run(args: argparse.Namespace) -> int:
    from ..fileio import write_atomic
    from .facts import gather_facts
    from .judge import diagnose_machine
    from .render import render
    from .workspace import find_lock, read_workspace

    _check_output(args.json)
    wanted = _wanted(args.framework)
    workspace = read_workspace(find_lock(args.lock))
    facts = load_facts(args.facts) if args.facts else gather_facts()
    answer = diagnose_machine(facts, workspace, wanted)
    render(answer)
    if args.json:
        write_atomic(args.json, json.dumps(answer, indent=2) + "\n")
    return answer["exit_code"]
