"""Print doctor's answer: a rich table where rich is installed, plain text otherwise."""

from __future__ import annotations

import shutil
import textwrap
from typing import Any, Callable

from ..gpuarch import sm_name
from ..guard import plain

WIDE = 120  # below this many columns the table's "why" column is too narrow: list layout

MARK = {"fits": "FITS", "warn": "WARN", "no": "NO"}
STYLE = {"fits": "green", "warn": "yellow", "no": "red"}


def health_lines(health: list[dict[str, Any]], index: Any) -> list[str]:
    """One GPU's health under its line: what is wrong with its fix, else one "ok" line."""
    rows = [h for h in health if h.get("gpu") == index]
    bad = [h for h in rows if h.get("status") in ("fail", "warn")]
    if not bad:
        return ["    health: ok (ECC, memory rows, clocks at idle, persistence)"] if rows else []
    bad.sort(key=lambda h: h["status"] != "fail")
    return [
        f"    health {h['status'].upper()}: {h['title']}: {h['message']}; fix: {h['fix']}"
        for h in bad
    ]


def machine_lines(facts: dict[str, Any], health: list[dict[str, Any]] | None = None) -> list[str]:
    plat, nvml = facts["platform"], facts.get("nvml") or {}
    os_part = f"{plat['subdir']} ({plat['machine']})"
    if plat.get("glibc"):
        os_part += f", glibc {plat['glibc']}"
    if plat.get("osx"):
        os_part += f", macOS {plat['osx']}"
    lines = [f"machine: {os_part}"]
    if not nvml.get("available"):
        lines.append(f"NVIDIA: none ({nvml.get('error') or nvml.get('reason') or 'no driver'})")
        return lines
    lines.append(
        f"NVIDIA driver {nvml.get('driver_version')} (supports CUDA "
        f"{nvml.get('cuda_driver_version')}), {len(nvml.get('gpus') or [])} GPU(s)"
    )
    for g in nvml.get("gpus") or []:
        cc = g.get("compute_capability")
        arch = f"{sm_name(cc)}, cc {cc}" if cc else "compute capability unknown"
        mig = ", MIG mode" if g.get("mig_mode") else ""
        lines.append(f"  GPU {g.get('index')}: {g.get('name')} ({arch}{mig})")
        lines += health_lines(health or [], g.get("index"))
    return lines


def _frameworks(v: dict[str, Any]) -> str:
    return ", ".join(f"{fw} {ver}" for fw, ver in v["versions"].items()) or "-"


def _why(v: dict[str, Any]) -> str:
    return "; ".join(v["reasons"] + v["warnings"] + v["notes"]) or "-"


def _split(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for this machine's platform, and one line naming the lock's other platforms."""
    subdir = answer["facts"]["platform"]["subdir"]
    here = [v for v in answer["verdicts"] if v["subdir"] == subdir]
    others = [f"{v['env']}/{v['platform']}" for v in answer["verdicts"] if v["subdir"] != subdir]
    if not others:
        return here, []
    if not here:
        return here, [
            f"No environment of the lock has a build for {subdir} (it has: {', '.join(others)})."
        ]
    return here, [f"Built for other platforms, not {subdir}: {', '.join(others)}."]


def _footer(answer: dict[str, Any]) -> list[str]:
    if not answer["recommended"]:
        return [f"Nothing fits: {answer['why']}."]
    return [
        f"Recommended: {answer['recommended']} ({answer['recommended_platform']}): "
        f"{answer['why']}.",
        "Install and verify it:",
        *(f"    {c}" for c in answer["commands"]),
    ]


def wrap(text: str, width: int, indent: int = 4) -> list[str]:
    """``text`` indented, wrapped at whole words to ``width`` (never a split word or path)."""
    pad = " " * indent
    return textwrap.wrap(
        text,
        width=max(width, indent + 20),
        initial_indent=pad,
        subsequent_indent=pad,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [pad]


def render_plain(
    answer: dict[str, Any], write: Callable[[str], Any] = print, width: int | None = None
) -> None:
    """The model layout: a row per env, its reasons on their own lines below, wrapped to
    ``width`` (the terminal's by default)."""
    width = width or shutil.get_terminal_size((80, 24)).columns
    raw_write = write

    def write(line: str) -> None:  # facts and lock come from outside: no control sequences
        raw_write(plain(line))

    here, others = _split(answer)
    rows = [("env", "platform", "CUDA", "frameworks", "verdict")]
    rows += [
        (v["env"], v["platform"], v["cuda"] or "-", _frameworks(v), MARK[v["status"]]) for v in here
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    if sum(widths) + 2 * (len(widths) - 1) > width:  # the table would wrap: the list layout
        for line, _style in narrow_lines(answer, width):
            write(line)
        return
    for line in machine_lines(answer["facts"], answer.get("health")):
        write(line)
    write(f"workspace: {answer['lock']}")
    write("")
    for i, r in enumerate(rows if here else []):
        write("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if i and _why(here[i - 1]) != "-":
            for line in wrap(_why(here[i - 1]), width):
                write(line)
    for line in others:
        for part in wrap(line, width, indent=0):
            write(part)
    write("")
    for line in _footer(answer):
        # the commands stay on one line each, ready to copy; prose wraps at whole words
        for part in [line] if line.startswith("    ") else wrap(line, width, indent=0):
            write(part)


def render_rich(answer: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from ..guard import escape, safe_text

    if console.width < WIDE:  # the plain layout, coloured: reasons get whole lines
        _render_narrow(answer, console)
        return
    # facts (GPU names, driver strings) and the lock come from outside: printed as Text
    for line in machine_lines(answer["facts"], answer.get("health")):
        console.print(safe_text(line), highlight=False)
    console.print(safe_text(f"workspace: {answer['lock']}"), highlight=False)
    table = Table(show_lines=False)
    for col in ("env", "platform", "CUDA", "verdict"):
        table.add_column(col, no_wrap=True)
    table.add_column("frameworks", overflow="fold", max_width=24)
    table.add_column("why", overflow="fold", ratio=1)
    here, others = _split(answer)
    for v in here:
        table.add_row(
            escape(v["env"]),
            escape(v["platform"]),
            escape(v["cuda"] or "-"),
            f"[{STYLE[v['status']]}]{MARK[v['status']]}[/]",
            escape(_frameworks(v)),
            escape(_why(v)),
        )
    if here:
        console.print(table)
    for line in [*others, *_footer(answer)]:
        # soft_wrap: the commands stay on one line each, ready to copy
        console.print(plain(line), highlight=False, markup=False, soft_wrap=True)


def narrow_lines(answer: dict[str, Any], width: int) -> list[tuple[str, str]]:
    """The list layout for terminals too narrow for the table: (line, style) pairs, an env per
    entry with its reasons on their own lines, wrapped at whole words to ``width``; commands
    (style "command") stay on one line each, ready to copy. Shared by the plain and the rich
    renderer, so both read the same at 40 columns."""
    lines: list[tuple[str, str]] = []

    def add(text: str, indent: int = 0, style: str = "") -> None:
        lines.extend((part, style) for part in wrap(text, width, indent=indent))

    for line in machine_lines(answer["facts"], answer.get("health")):
        add(line)
    add(f"workspace: {answer['lock']}")
    lines.append(("", ""))
    here, others = _split(answer)
    for v in here:
        cuda = f"CUDA {v['cuda']}" if v["cuda"] else "no CUDA"
        rest = f"{v['env']} ({v['platform']}, {cuda}): {_frameworks(v)}"
        first, *more = wrap(rest, width - 5, indent=0)
        lines.append((f"{MARK[v['status']]:<5}{first}", "status:" + v["status"]))
        lines.extend((" " * 5 + part, "") for part in more)
        for reason in v["reasons"] + v["warnings"] + v["notes"]:  # one reason per line
            add(reason, indent=5, style="dim" if v["status"] == "fits" else "")
    for line in others:
        add(line)
    lines.append(("", ""))
    for line in _footer(answer):
        if line.startswith("    "):
            lines.append((line, "command"))
        else:
            add(line)
    return lines


def _render_narrow(answer: dict[str, Any], console: Any) -> None:
    from rich.text import Text

    for line, style in narrow_lines(answer, console.width):
        if style == "command":  # one line, ready to copy
            console.print(plain(line), highlight=False, markup=False, soft_wrap=True)
        elif style.startswith("status:"):  # the verdict word coloured, the rest plain
            status = style.split(":", 1)[1]
            text = Text(plain(line[:5]), style=STYLE[status])
            text.append(plain(line[5:]))
            console.print(text, overflow="fold", no_wrap=True, crop=False)
        else:  # outside text: no control sequences
            console.print(Text(plain(line), style=style), overflow="fold", no_wrap=True, crop=False)


def render(answer: dict[str, Any]) -> None:
    try:
        from rich.console import Console
    except ImportError:
        render_plain(answer)
        return
    render_rich(answer, Console())
