#!/usr/bin/env python3
"""Write the pull-request body for a scheduled lock update (update-locks.yml).

    python .ci/lock_update_summary.py --update-json pixi-update.json --diffstat diffstat.txt \
        --audit-log audit.log --audit-status passed --out pr-body.md

--update-json is what `pixi update --json` printed: {"version": 1, "environment":
{env: {platform: [{"name", "before", "after", "type", "explicit"}]}}}. For a changed package
pixi keeps only the fields that differ in `before`/`after`; the version and build are read
from those fields, else from the archive file name in the package URL. Missing or empty input
is reported as such, never as an error: the body is still written. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

# A PR body is capped at 65536 characters by GitHub; keep well below it.
MAX_BODY = 60000
MAX_ROWS = 400
AUDIT_TAIL_LINES = 60


def _archive_version(url: str) -> str:
    """`.../name-1.2.3-build_0.conda` -> `1.2.3 build_0`; wheels -> their version."""
    name = unquote(Path(urlparse(url).path).name)
    for suffix in (".conda", ".tar.bz2"):
        if name.endswith(suffix):
            parts = name[: -len(suffix)].rsplit("-", 2)
            return f"{parts[1]} {parts[2]}" if len(parts) == 3 else name
    if name.endswith(".whl"):
        parts = name.split("-")
        return parts[1] if len(parts) > 2 else name
    return name


def _describe(side: object) -> str:
    """One side of a package change, as `version build` where the data allows."""
    if side is None:
        return "-"
    if not isinstance(side, dict):
        return str(side)
    version, build = side.get("version"), side.get("build")
    if version or build:
        return " ".join(str(x) for x in (version, build) if x)
    for key in ("conda", "pypi", "url"):
        if isinstance(side.get(key), str):
            return _archive_version(side[key])
    return "(metadata only)"


def _rows(update: dict) -> list[dict[str, str]]:
    rows = []
    for env, platforms in (update.get("environment") or {}).items():
        for platform, packages in (platforms or {}).items():
            for pkg in packages or []:
                before, after = pkg.get("before"), pkg.get("after")
                change = "added" if before is None else "removed" if after is None else "changed"
                rows.append(
                    {
                        "env": str(env),
                        "platform": str(platform),
                        "name": str(pkg.get("name", "?")),
                        "type": str(pkg.get("type", "")),
                        "explicit": "yes" if pkg.get("explicit") else "",
                        "change": change,
                        "before": _describe(before),
                        "after": _describe(after),
                    }
                )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, str]]) -> list[str]:
    out = [
        "| environment | platform | package | change | before | after |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows[:MAX_ROWS]:
        name = f"**{row['name']}**" if row["explicit"] else row["name"]
        if row["type"] == "pypi":
            name += " (PyPI)"
        cells = (row["env"], row["platform"], name, row["change"], row["before"], row["after"])
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(rows) > MAX_ROWS:
        out.append(f"| ... | | {len(rows) - MAX_ROWS} more rows left out | | | |")
    return out


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _load_update(text: str) -> dict | None:
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # pixi may print a line of prose before the JSON object; take the object.
        start = text.find("{")
        if start < 0:
            return None
        try:
            data = json.loads(text[start:])
        except json.JSONDecodeError:
            return None
    return data if isinstance(data, dict) else None


def render(update_text: str, diffstat: str, audit_log: str, audit_status: str, run_url: str) -> str:
    update = _load_update(update_text)
    rows = _rows(update) if update else []
    direct = [r for r in rows if r["explicit"]]
    combos = {(r["env"], r["platform"]) for r in rows}

    lines = ["## Scheduled lock update", ""]
    lines.append(
        "`pixi update` re-solved every environment against conda-forge; derived files were "
        "regenerated from the new `pixi.lock`."
    )
    if run_url:
        lines.append(f"Workflow run: {run_url}")
    lines.append("")
    if update is None:
        lines.append("`pixi update --json` printed no change list (see the workflow log).")
    else:
        lines.append(
            f"**{len(rows)}** package changes in **{len(combos)}** environment x platform "
            f"combinations; **{len(direct)}** of them touch direct dependencies (bold)."
        )
    lines.append("")

    status = audit_status or "not run"
    mark = {"passed": "passed", "failed": "**FAILED**"}.get(status, status)
    lines += [f"### lock-audit: {mark}", ""]
    if audit_log.strip():
        tail = "\n".join(audit_log.rstrip().splitlines()[-AUDIT_TAIL_LINES:])
        lines += ["<details><summary>lock-audit output (tail)</summary>", "", "```"]
        lines += [tail, "```", "", "</details>", ""]

    if direct:
        lines += ["### Direct dependencies", ""] + _table(direct) + [""]
    if rows:
        lines += [f"<details><summary>All package changes ({len(rows)})</summary>", ""]
        lines += _table(rows) + ["", "</details>", ""]

    lines += ["### Files changed", "", "```", diffstat.strip() or "(no diff)", "```", ""]
    lines.append(
        "Merge only after the `ci` checks pass; GPU environments are proven by the `gpu` "
        "workflow on the self-hosted GPU runner (run it on this branch before merging)."
    )
    body = "\n".join(lines) + "\n"
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 80] + "\n\n... (truncated; see the workflow log)\n"
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-json", type=Path)
    parser.add_argument("--diffstat", type=Path)
    parser.add_argument("--audit-log", type=Path)
    parser.add_argument("--audit-status", default="")
    parser.add_argument("--run-url", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    body = render(
        _read(args.update_json),
        _read(args.diffstat),
        _read(args.audit_log),
        args.audit_status,
        args.run_url,
    )
    args.out.write_text(body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
