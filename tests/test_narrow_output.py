"""Output that fits the terminal: doctor and report at 80 and 40 columns keep every word whole
and lose no column (the wide layouts squeezed doctor's "why" to 11 characters and split
report's headers, "envir/onmen/t")."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from test_doctor import V100, answer_for, machine
from test_rootcause import no_driver_cuda12

from envcheck.doctor.render import render_plain, render_rich
from envcheck.report import fleet


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z0-9_.]{3,}", text))


def console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, color_system=None), out


def long_lines(text: str, width: int) -> list[str]:
    # the install/verify commands stay whole on one line each, ready to copy
    return [x for x in text.splitlines() if len(x) > width and not x.startswith("    pixi ")]


@pytest.mark.parametrize("width", [80, 40])
def test_doctor_keeps_every_reason_whole(width):
    answer, _ = answer_for(machine(driver="535.247.01", gpus=[V100, V100]))
    con, out = console(width)
    render_rich(answer, con)
    text = out.getvalue()
    assert not long_lines(text, width), long_lines(text, width)
    plain: list[str] = []
    render_plain(answer, plain.append, width=10_000)
    missing = words("\n".join(plain)) - words(text) - {"env", "platform", "CUDA", "frameworks"}
    missing -= {"verdict"}  # the plain layout's header row
    assert not missing, sorted(missing)
    # the reason a V100 cannot run CUDA 13 builds is there, in whole words
    assert "sm_70" in text


def test_plain_doctor_wraps_reasons_on_their_own_lines():
    answer, _ = answer_for(machine(driver="535.247.01", gpus=[V100]))
    lines: list[str] = []
    render_plain(answer, lines.append, width=80)
    assert not long_lines("\n".join(lines), 80)


@pytest.mark.parametrize("width", [60, 40])
def test_plain_doctor_lists_envs_when_the_table_would_not_fit(width):
    # `python3 -m envcheck doctor` with nothing installed prints this layout: its table rows
    # are about 77 columns, which a narrow terminal would break mid-word
    answer, _ = answer_for(machine(driver="535.247.01", gpus=[V100, V100]))
    lines: list[str] = []
    render_plain(answer, lines.append, width=width)
    text = "\n".join(lines)
    assert not long_lines(text, width), long_lines(text, width)
    wide: list[str] = []
    render_plain(answer, wide.append, width=10_000)
    missing = words("\n".join(wide)) - words(text)
    missing -= {"env", "platform", "CUDA", "frameworks", "verdict"}  # the table's header row
    assert not missing, sorted(missing)
    assert "sm_70" in text


def fleet_machines():
    bad = no_driver_cuda12().to_dict()
    return [
        fleet.Machine("node01", Path("node01.json"), fleet.report_from_dict(bad)),
        fleet.Machine("node02", Path("node02.json"), fleet.report_from_dict(json.loads(
            json.dumps(bad)))),
    ]  # fmt: skip


@pytest.mark.parametrize("width", [80, 40])
def test_report_splits_no_word_at_narrow_widths(width):
    con, out = console(width)
    fleet.render(fleet_machines(), con)
    text = out.getvalue()
    assert max(len(x) for x in text.splitlines()) <= width
    for cat in ("environment", "devices", "kernels", "distributed", "training"):
        assert re.search(rf"^\s+{cat}: ", text, re.M), cat
    assert "FAIL gpus [1]" in text and "NOT RUN" in text
    wide_con, wide = console(300)
    fleet.render(fleet_machines(), wide_con)
    missing = words(wide.getvalue()) - words(text) - {"machine", "status"}
    assert not missing, sorted(missing)
