"""`envcheck report FILES...`: many machines' `verify --json` reports as one table.

Machines are rows (named by file name, e.g. reports/%N.json from srun), checks are columns
(grouped by category in the terminal), each failing or warning cell points to its cause and
fix under the table. Files that are not
envcheck reports are refused with one line each; the rest are still reported. Exit 1 when a
machine failed or a file was refused.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EnvcheckError
from ..guard import one_line, plain, plain_copy
from ..model import CATEGORIES, CheckResult, DeviceResult, Report, Status, worst
from .summary import ICON, _cell
from .terminal import LABEL, STYLE

MAX_REPORT_BYTES = 16 * 2**20  # a verify report is a few tens of KiB


@dataclass
class Machine:
    name: str
    path: Path
    report: Report


def report_from_dict(d: Any) -> Report:
    """A Report from verify's JSON (schema.json); ValueError naming what does not fit."""
    if not isinstance(d, dict) or d.get("schema_version") != 1 or "categories" not in d:
        raise ValueError("not an envcheck verify report (no schema_version 1 and categories)")
    try:
        checks = []
        for cat in d["categories"]:
            if cat["name"] not in CATEGORIES:
                raise ValueError(f"unknown category {cat['name']!r}")
            for c in cat["checks"]:
                devices = [
                    DeviceResult(
                        str(x["device"]),
                        Status(x["status"]),
                        str(x["message"]),
                        dict(x.get("figures") or {}),
                        _text_or_none(x.get("cause")),
                        _text_or_none(x.get("fix")),
                    )  # fmt: skip
                    for x in c.get("devices", [])
                ]
                checks.append(
                    CheckResult(
                        cat["name"],
                        str(c["name"]),
                        Status(c["status"]),
                        str(c["message"]),
                        c.get("cause"),
                        c.get("fix"),
                        float(c.get("duration_s") or 0),
                        devices,
                        dict(c.get("figures") or {}),
                        [str(x) for x in c.get("follows") or []],
                    )
                )
        return Report(
            profile=str(d["profile"]),
            frameworks=[str(f) for f in d["frameworks"]],
            require_gpu=bool(d["require_gpu"]),
            environment=dict(d["environment"]),
            checks=checks,
            envcheck_version=str(d["envcheck_version"]),
            started_at=str(d["started_at"]),
            duration_s=float(d["duration_s"]),
        )
    except KeyError as exc:
        raise ValueError(f"not an envcheck verify report: no {exc} field") from None
    except (TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not an envcheck verify report: {exc}") from None


def _text_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def load_report(path: Path) -> Report:
    """Read one report: type checked before opening, size and nesting bounded, shape checked.

    ValueError says why it is refused (one line, naming the field).
    """
    from ..guard import load_file
    from ..shapes import ShapeError, check_report

    try:
        data = load_file(path, "json", MAX_REPORT_BYTES, "report", "-")
    except EnvcheckError as exc:
        # "report PATH <why>; -" or "report PATH: <why>; -": keep the why (the caller names
        # the file and adds the fix)
        why = exc.message.removesuffix("; -")
        for prefix in (f"report {path}: ", f"report {path} "):
            why = why.removeprefix(prefix)
        raise ValueError(why) from None
    if not isinstance(data, dict) or data.get("schema_version") != 1 or "categories" not in data:
        raise ValueError("not an envcheck verify report (no schema_version 1 and categories)")
    try:
        check_report(data)
    except ShapeError as exc:
        raise ValueError(f"not an envcheck verify report: {plain(str(exc))}") from None
    return report_from_dict(data)


def load_all(paths: list[Path]) -> tuple[list[Machine], list[str]]:
    machines, refused = [], []
    stems = [p.stem for p in paths]
    for path in paths:
        try:
            report = load_report(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            reason = one_line(reason)
            refused.append(
                f"refused {path}: {reason}; pass files written by `envcheck verify --json`"
            )
            continue
        name = path.stem if stems.count(path.stem) == 1 else str(path)
        # another machine's words: no terminal control sequences anywhere in what is shown
        machines.append(Machine(plain(name), path, plain_copy(report)))
    return machines, refused


def check_ids(machines: list[Machine]) -> list[tuple[str, str]]:
    """(category, check id) of every check any machine ran, in report order."""
    seen: dict[str, str] = {}
    for m in machines:
        for c in m.report.checks:
            seen.setdefault(c.check_id, c.category)
    return sorted(((cat, cid) for cid, cat in seen.items()), key=lambda x: CATEGORIES.index(x[0]))


def notes(machines: list[Machine]) -> list[tuple[Machine, CheckResult]]:
    """The failing and warning cells, each with its cause and fix."""
    return [
        (m, c) for m in machines for c in m.report.checks if c.status in (Status.FAIL, Status.WARN)
    ]


def unhealthy_gpus(machines: list[Machine]) -> list[tuple[Machine, CheckResult, DeviceResult]]:
    """Every GPU a health check failed or warned on, failures first, in machine order."""
    found = [
        (m, c, d)
        for m in machines
        for c in m.report.checks
        if c.category == "health"
        for d in c.devices
        if d.status in (Status.FAIL, Status.WARN)
    ]
    return sorted(found, key=lambda x: x[2].status is not Status.FAIL)


def unhealthy_line(m: Machine, c: CheckResult, d: DeviceResult) -> str:
    fix = f"; fix: {d.fix or c.fix}" if d.fix or c.fix else ""
    return f"{m.name} {d.device}: {c.check_id}: {d.message}{fix}"


def render_unhealthy(machines: list[Machine], console: Any) -> None:
    """The unhealthy GPUs, before the table: a bad card is the first thing a fleet admin acts
    on (drain it), and in a big fleet its row would be one among hundreds."""
    from rich.text import Text

    sick = unhealthy_gpus(machines)
    if not sick:
        return
    console.print(Text(f"Unhealthy GPUs: {len(sick)}", style="bold red"))
    from .terminal import hang

    for m, c, d in sick:
        hang(
            console,
            unhealthy_line(m, c, d),
            4,
            first=Text(f"{LABEL[d.status]} ", style=STYLE[d.status]),
        )


def note_text(c: CheckResult) -> str:
    if c.follows:  # a follow-on: its root, listed too, carries the cause and the fix
        return f"{c.message} (follows from {', '.join(c.follows)})"
    extra = c.cause_beyond_message
    return f"{c.message}" + (f": {extra}" if extra else "") + (f"; fix: {c.fix}" if c.fix else "")


def render(machines: list[Machine], console: Any) -> None:
    """Machines as rows, one column per category whose cell names its failing checks.

    A column per check (the step summary's layout) is unreadable in a terminal: a category's
    cell says PASS when all its checks passed, else names each failing or warning check.
    """
    render_unhealthy(machines, console)
    from rich.text import Text

    from .terminal import hang

    cats = [c for c in CATEGORIES if any(cat == c for cat, _ in check_ids(machines))]
    found = notes(machines)
    marks = {(m.name, c.check_id): i for i, (m, c) in enumerate(found, 1)}
    if console.width < TABLE_MIN + CATEGORY_MIN * len(cats):
        _render_list(machines, cats, marks, console)
    else:
        _render_table(machines, cats, marks, console)
    for i, (m, c) in enumerate(found, 1):
        lead = Text(f"[{i}] {m.name} {c.check_id}: ", style=STYLE[c.status])
        hang(console, note_text(c), 4, first=lead)
    failed = [m.name for m in machines if m.report.status is Status.FAIL]
    if failed:
        hang(
            console,
            f"FAILED: {len(failed)} of {len(machines)} machine(s): " + ", ".join(failed),
            4,
            "bold red",
            first=Text(""),
        )
    else:
        console.print(Text(f"PASSED: {len(machines)} machine(s)", style="bold green"))


# a category column narrower than this splits its name ("envir/onmen/t"): list layout instead
CATEGORY_MIN = 14
TABLE_MIN = 30


def _cells(m: Machine, cat: str, marks: dict[tuple[str, str], int]) -> Any:
    """One machine's cell for one category: PASS, "-", or its failing checks with marks."""
    from rich.text import Text

    checks = [c for c in m.report.checks if c.category == cat]
    bad = [c for c in checks if (m.name, c.check_id) in marks]
    if not checks:
        return Text("-", style="dim")
    if not bad:
        statuses = [c.status for c in checks]
        unrun = Status.NOT_RUN in statuses and Status.FAIL not in statuses
        status = Status.NOT_RUN if unrun else worst(statuses)
        return Text(LABEL[status], style=STYLE[status])
    cell = Text()
    for c in bad:
        label = f"{LABEL[c.status]} {c.name} [{marks[(m.name, c.check_id)]}]"
        cell.append(("\n" if cell else "") + label, style=STYLE[c.status])
    return cell


def _render_list(machines: list[Machine], cats: list[str], marks, console: Any) -> None:
    """A machine per line, then one indented line per category, wrapped at whole words."""
    from rich.text import Text

    from .terminal import hang

    console.print(Text(f"envcheck report: {len(machines)} machine(s)", style="bold"))
    for m in machines:
        head = Text(f"{LABEL[m.report.status]:<8}", style=STYLE[m.report.status])
        head.append(m.name, style="bold")
        console.print(head, overflow="fold")
        for cat in cats:
            cell = _cells(m, cat, marks)
            lead = Text(f"    {cat}: ")
            hang(console, cell.plain.replace("\n", ", "), 8, first=lead)


def _render_table(machines: list[Machine], cats: list[str], marks, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"envcheck report: {len(machines)} machine(s)", header_style="bold")
    table.add_column("machine", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for cat in cats:
        table.add_column(cat, overflow="fold", min_width=min(len(cat), CATEGORY_MIN))
    for m in machines:
        row = [Text(m.name), Text(LABEL[m.report.status], style=STYLE[m.report.status])]
        row += [_cells(m, cat, marks) for cat in cats]
        table.add_row(*row)
    console.print(table)


def to_markdown(machines: list[Machine], refused: list[str]) -> str:
    """The GitHub step summary: the same table with icons, then the causes."""
    ids = check_ids(machines)
    failed = sum(m.report.status is Status.FAIL for m in machines)
    verdict = f"{failed} of {len(machines)} machine(s) failed" if failed else "passed"
    sick = [
        f"- {ICON[d.status]} {_cell(unhealthy_line(m, c, d))}"
        for m, c, d in unhealthy_gpus(machines)
    ]
    lines = [
        f"### envcheck report: {verdict}",
        "",
        *([f"**Unhealthy GPUs: {len(sick)}**", "", *sick, ""] if sick else []),
        "| machine | " + " | ".join(f"`{cid}`" for _, cid in ids) + " |",
        "|---|" + "---|" * len(ids),
    ]
    for m in machines:
        results = {c.check_id: c for c in m.report.checks}
        cells = [ICON[results[cid].status] if cid in results else "" for _, cid in ids]
        lines.append(f"| {ICON[m.report.status]} `{_cell(m.name)}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        f"- {ICON[c.status]} `{_cell(m.name)}` `{c.check_id}`: {_cell(note_text(c))}"
        for m, c in notes(machines)
    ]
    lines += [f"- ❌ {_cell(line)}" for line in refused]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="JSON reports written by `envcheck verify --json`")  # fmt: skip
    p.add_argument("--junit", metavar="FILE", type=Path, help="also write one JUnit XML file")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..guard import check_output, printing_survives, warn_step_summary, write_output
    from .junit import to_junit_many

    check_output(args.junit, "--junit")
    machines, refused = load_all(args.files)
    for line in refused:
        print(f"envcheck: {one_line(line)}", file=sys.stderr)  # a file name is outside text too
    if not machines:
        raise EnvcheckError(
            f"none of the {len(args.files)} file(s) is an envcheck report; pass files written "
            "by `envcheck verify --json`"
        )
    if args.junit:  # written before the table: a closed stdout must not lose it
        pairs = [(m.name, m.report) for m in machines]
        write_output(
            args.junit, to_junit_many(pairs, f"envcheck fleet ({len(machines)})"), "--junit"
        )
    warn_step_summary(to_markdown(machines, refused))
    printing_survives(lambda: render(machines, Console()))
    return 1 if refused or any(m.report.status is Status.FAIL for m in machines) else 0
