"""Human report with rich: categories in order, causes and fixes under failures, root cause last.

Wide terminals get a table; narrower ones (below WIDE columns) a list with each check's result on
its own indented lines, so no column is squeezed out and words wrap whole. Checks that follow
from another failure say which, and their own cause and fix are left out: the closing lines name
the root cause(s) and the first fix to apply.
"""

from __future__ import annotations

import textwrap

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..guard import plain_copy
from ..model import CATEGORIES, CheckResult, Report, Status
from ..rootcause import summary_lines

STYLE = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.SKIP: "dim",
    Status.FAIL: "bold red",
    Status.NOT_RUN: "red",
}
LABEL = {
    Status.PASS: "PASS",
    Status.WARN: "WARN",
    Status.SKIP: "SKIP",
    Status.FAIL: "FAIL",
    Status.NOT_RUN: "NOT RUN",
}
WIDE = 110  # below this many columns the table's result column gets too narrow to read
INDENT = 4


def rows(c: CheckResult) -> list[tuple[str, Status | None, str]]:
    """(label or "", status for the style, text) lines under one check: devices, cause, fix."""
    out: list[tuple[str, Status | None, str]] = []
    for d in c.devices:
        if len(c.devices) == 1 and d.message == c.message and d.status is c.status:
            continue  # one device saying what the check said: no second row
        out.append((d.device, d.status, d.message))
    if c.follows:
        out.append(("", c.status, f"follows from {', '.join(c.follows)}"))
    elif c.status in (Status.FAIL, Status.WARN) and c.cause:
        if c.cause_beyond_message:
            out.append(("", c.status, f"cause: {c.cause}"))
        out.append(("", None, f"fix:   {c.fix}"))
    return out


def _table(report: Report, console: Console) -> None:
    table = Table(show_header=True, header_style="bold", expand=False, pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", overflow="fold")
    for cat in CATEGORIES:
        for c in (c for c in report.checks if c.category == cat):
            table.add_row(Text(LABEL[c.status], style=STYLE[c.status]), c.check_id, Text(c.message))
            for device, status, text in rows(c):
                if device:
                    table.add_row(
                        Text(f"  {LABEL[status]}", style=STYLE[status]),
                        Text(f"  {device}", style="dim"),
                        Text(text),
                    )
                else:
                    table.add_row("", "", Text(text, style=STYLE[status] if status else "cyan"))
    console.print(table)


def hang(console: Console, text: str, indent: int, style: str = "", first: Text | None = None):
    """``first`` (styled; default: ``indent`` spaces) then ``text``, wrapped at whole words to
    the console, every line after the first indented by ``indent``."""
    lead = first if first is not None else Text(" " * indent)
    lines = textwrap.wrap(
        lead.plain + text,
        width=max(console.width, indent + 8),
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
        drop_whitespace=True,
    )
    if lead.plain and not lead.plain.strip():  # wrap drops a first line's leading blanks
        lines = [lead.plain + lines[0].lstrip()] + lines[1:] if lines else [lead.plain]
    joined = Text("\n".join(lines), style=style)
    where = _positions(lead.plain, joined.plain)
    for span in [*lead.spans, *([_whole(lead)] if lead.style else [])]:
        start, end = where(span.start), where(span.end)
        if end > start:
            joined.stylize(span.style, start, end)
    console.print(joined, overflow="fold", no_wrap=True, crop=False)


def _whole(text: Text):
    from rich.text import Span

    return Span(0, len(text.plain), text.style)


def _positions(prefix: str, wrapped: str):
    """Where each character of ``prefix`` landed in ``wrapped`` (wrapping only changes blanks:
    a blank may become a line break and indent, or be dropped at the end of a line)."""
    at, i = [], 0
    for ch in prefix:
        if not ch.isspace():
            while i < len(wrapped) and wrapped[i].isspace():
                i += 1  # a line break and indent that wrapping put here
        at.append(i)
        if i < len(wrapped) and wrapped[i] == ch:
            i += 1
    at.append(i)
    return lambda k: at[min(k, len(at) - 1)]


def _list(report: Report, console: Console) -> None:
    """One check per line (status, id, result) wrapped at whole words, details indented below:
    readable at 80 columns and nothing lost at 40."""
    for cat in CATEGORIES:
        for c in (c for c in report.checks if c.category == cat):
            head = Text(f"{LABEL[c.status]:<8}", style=STYLE[c.status])
            head.append(f"{c.check_id}  ", style="bold")
            if len(head.plain) + len(c.message) <= console.width:
                hang(console, c.message, INDENT, first=head)
            else:  # a long result goes on its own lines
                console.print(head.rstrip() or head, overflow="fold")
                hang(console, c.message, INDENT)
            for device, status, text in rows(c):
                if device:
                    lead = Text(" " * INDENT + f"{LABEL[status]} ", style=STYLE[status])
                    lead.append(f"{device}: ", style="dim")
                    hang(console, text, INDENT * 2, first=lead)
                else:
                    hang(
                        console,
                        text,
                        INDENT * 2,
                        STYLE[status] if status else "cyan",
                        first=Text(" " * INDENT),
                    )


def render(report: Report, console: Console) -> None:
    # Every string from outside (CONDA_PREFIX, GPU names, a replayed report) without terminal
    # control sequences; the layout below prints them as Text, never as markup.
    report = plain_copy(report)
    env = report.environment
    py = env.get("python", {})
    where = env.get("pixi_environment") or env.get("conda_prefix") or "no conda env"
    console.print(
        Text(
            f"envcheck {report.envcheck_version} profile {report.profile} "
            f"({', '.join(report.frameworks)}{', GPU required' if report.require_gpu else ''}) "
            f"- Python {py.get('version', '?')} - {where}",
            style="bold",
        )
    )
    if console.width >= WIDE:
        _table(report, console)
    else:
        _list(report, console)
    for note in report.notes:  # e.g. a shared worker that died and was replaced
        hang(console, f"note: {note}", 6, "yellow")
    counts = report.counts()
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    verdict = "FAILED" if report.exit_code else "PASSED"
    style = "bold red" if report.exit_code else "bold green"
    console.print(Text(f"{verdict}: {summary} in {report.duration_s:.1f} s", style=style))
    for i, line in enumerate(summary_lines(report.checks)):
        lead = len(line) - len(line.lstrip())
        numbered = line.lstrip()[:1].isdigit()  # "  1. id: cause" hangs under the id
        hang(
            console,
            line.lstrip(),
            lead + (3 if numbered else 4),
            "bold red" if i == 0 else "",
            first=Text(line[:lead]),
        )
