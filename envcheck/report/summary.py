"""Markdown table for $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from ..guard import one_line
from ..model import Report, Status

ICON = {Status.PASS: "✅", Status.WARN: "⚠️", Status.SKIP: "⏭️", Status.FAIL: "❌"}


def _cell(text: str | None) -> str:
    return one_line(text or "").replace("|", "\\|")


def to_markdown(report: Report) -> str:
    verdict = "failed" if report.exit_code else "passed"
    lines = [
        f"### envcheck: `{report.profile}` {verdict}",
        "",
        "| | check | result | fix |",
        "|---|---|---|---|",
    ]
    for c in report.checks:
        fix = c.fix if c.status in (Status.FAIL, Status.WARN) else ""
        extra = c.cause_beyond_message if c.status is not Status.PASS else None
        msg = f"{c.message}: {extra}" if extra else c.message
        lines.append(f"| {ICON[c.status]} | `{c.check_id}` | {_cell(msg)} | {_cell(fix)} |")
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    lines += ["", f"{counts} in {report.duration_s:.1f} s", ""]
    return "\n".join(lines)
