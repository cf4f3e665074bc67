"""Human report with rich: one table, categories in order, causes and fixes under failures."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..guard import escape, safe_text
from ..model import CATEGORIES, Report, Status

STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.SKIP: "dim", Status.FAIL: "bold red"}
LABEL = {Status.PASS: "PASS", Status.WARN: "WARN", Status.SKIP: "SKIP", Status.FAIL: "FAIL"}


def render(report: Report, console: Console) -> None:
    env = report.environment
    py = env.get("python", {})
    where = env.get("pixi_environment") or env.get("conda_prefix") or "no conda env"
    # everything but the markup is escaped: a CONDA_PREFIX or a replayed report may hold
    # "[/b]" (a MarkupError after all checks ran) or terminal escape sequences
    console.print(
        f"[bold]envcheck {escape(report.envcheck_version)}[/] profile "
        f"[bold]{escape(report.profile)}[/] ({escape(', '.join(report.frameworks))}"
        f"{', GPU required' if report.require_gpu else ''}) "
        f"- Python {escape(py.get('version', '?'))} - {escape(where)}"
    )
    table = Table(show_header=True, header_style="bold", expand=False, pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", overflow="fold")
    for cat in CATEGORIES:
        for c in (c for c in report.checks if c.category == cat):
            table.add_row(
                Text(LABEL[c.status], style=STYLE[c.status]),
                safe_text(c.check_id),
                safe_text(c.message),
            )
            for d in c.devices:
                if len(c.devices) == 1 and d.message == c.message and d.status is c.status:
                    continue  # one device saying what the check said: no second row
                table.add_row(
                    Text(f"  {LABEL[d.status]}", style=STYLE[d.status]),
                    safe_text(f"  {d.device}", style="dim"),
                    safe_text(d.message),
                )
            if c.status in (Status.FAIL, Status.WARN) and c.cause:
                if c.cause_beyond_message:
                    table.add_row("", "", safe_text(f"cause: {c.cause}", style=STYLE[c.status]))
                table.add_row("", "", safe_text(f"fix:   {c.fix}", style="cyan"))
    console.print(table)
    for note in report.notes:  # e.g. a shared worker that died and was replaced
        console.print(Text(f"note: {note}", style="yellow"))
    counts = report.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = "FAILED" if report.exit_code else "PASSED"
    style = "bold red" if report.exit_code else "bold green"
    console.print(Text(f"{verdict}: {summary} in {report.duration_s:.1f} s", style=style))
