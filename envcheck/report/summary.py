"""Markdown table for $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from ..guard import one_line
from ..model import Report, Status
from ..rootcause import summary_lines

ICON = {
    Status.PASS: "✅",
    Status.WARN: "⚠️",
    Status.SKIP: "⏭️",
    Status.FAIL: "❌",
    Status.NOT_RUN: "⏸️",
}


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
        fix = c.fix if c.status in (Status.FAIL, Status.WARN) and not c.follows else ""
        extra = c.cause_beyond_message if c.status is not Status.PASS else None
        msg = f"{c.message}: {extra}" if extra else c.message
        if c.follows:  # a follow-on: its own fix is "fix the root first"
            msg = f"{c.message} (follows from {', '.join(f'`{x}`' for x in c.follows)})"
        lines.append(f"| {ICON[c.status]} | `{c.check_id}` | {_cell(msg)} | {_cell(fix)} |")
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in report.counts().items() if n)
    lines += ["", f"{counts} in {report.duration_s:.1f} s", ""]
    closing = summary_lines(report.checks)
    if closing:  # root cause(s) and the first fix, as the last thing read
        lines += ["**" + _cell(closing[0]) + "**", ""]
        lines += [f"- {_cell(line.strip())}" for line in closing[1:]] + [""]
    return "\n".join(lines)
