"""The README against the code: usage blocks, troubleshooting messages, JSON example, figures.

Generic on purpose: every subcommand and option the code has must be in the README's usage
block and every one the README names must exist, whatever subcommands are added later.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import json
import re

import jsonschema
import pytest
from conftest import REPO

from envcheck.checks import REGISTRY
from envcheck.cli import build_parser
from envcheck.report.json_report import SCHEMA_PATH

README = (REPO / "README.md").read_text(encoding="utf-8")
# Words the README's quoted messages use for a value the code fills in.
PLACEHOLDER = re.compile(r"\.\.\.|''|\b(?:X|Y|Z|N|P|DIR|ENV|FILE|URL|SIGSEGV)\b")


def section(title: str, text: str = README) -> str:
    """The body of the Markdown section headed exactly ``title`` (up to the next heading of
    the same or a higher level)."""
    level = len(title) - len(title.lstrip("#"))
    lines = text.splitlines()
    try:
        start = lines.index(title) + 1
    except ValueError:
        pytest.fail(f"README has no section {title!r}")
    heading = re.compile("#{1,%d} " % level)  # noqa: UP031 (braces are regex syntax)
    end = next((i for i in range(start, len(lines)) if heading.match(lines[i])), len(lines))
    return "\n".join(lines[start:end])


def first_code_block(body: str) -> str:
    """The first indented (4 spaces) code block of a section."""
    block: list[str] = []
    for line in body.splitlines():
        if line.startswith("    "):
            block.append(line[4:])
        elif block and line.strip():
            break
    return "\n".join(block)


def usage_by_command(block: str, program: str) -> dict[str, set[str]]:
    """{subcommand (or "" for a program without subcommands): options} from a usage block
    whose entries start with ``program`` and may continue on indented lines."""
    out: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith(program):
            rest = line[len(program) :].split()
            current = rest[0] if rest and not rest[0].startswith("[") else ""
            out.setdefault(current, set())
        if current is not None:
            out[current] |= set(re.findall(r"--[a-z][a-z0-9-]*", line))
    return out


def long_options(parser: argparse.ArgumentParser) -> list[set[str]]:
    """Each action's long option strings (aliases together), --help left out."""
    return [
        {o for o in a.option_strings if o.startswith("--")}
        for a in parser._actions
        if any(o.startswith("--") for o in a.option_strings) and "--help" not in a.option_strings
    ]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def assert_usage_matches(documented: set[str], parser: argparse.ArgumentParser, where: str):
    actions = long_options(parser)
    missing = [sorted(a) for a in actions if not a & documented]
    known = set().union(*actions) if actions else set()
    unknown = sorted(documented - known)
    assert not missing, f"{where}: options in the code but not in the README usage: {missing}"
    assert not unknown, f"{where}: options in the README usage that the code lacks: {unknown}"


def test_envcheck_usage_block_lists_every_subcommand_and_option():
    documented = usage_by_command(first_code_block(section("## envcheck")), "envcheck")
    parser = build_parser()
    commands = subcommands(parser)
    assert sorted(documented) == sorted(commands), "README usage vs `envcheck` subcommands"
    for name, sub in commands.items():
        assert_usage_matches(documented[name], sub, f"envcheck {name}")


def test_benchmark_usage_block_matches_bench_options():
    spec = importlib.util.spec_from_file_location("bench_mnist", REPO / "bench" / "mnist.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    documented = usage_by_command(
        first_code_block(section("## Benchmark")), "python bench/mnist.py"
    )
    assert list(documented) == [""], documented
    assert_usage_matches(documented[""], bench.build_parser(), "bench/mnist.py")


def code_strings() -> list[str]:
    """Every string literal in envcheck's source; an f-string's fields become NUL."""
    out = []
    for path in sorted((REPO / "envcheck").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                out.append(
                    "".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values)
                )
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append(node.value)
    return out


def troubleshooting_rows() -> list[str]:
    rows = [
        line.split("|")[1].strip()
        for line in section("## Troubleshooting").splitlines()
        if line.startswith("| ") and not line.startswith("| message")
    ]
    assert len(rows) >= 10, "the troubleshooting table was not found"
    return rows


def test_troubleshooting_messages_are_ones_envcheck_prints():
    strings = code_strings()
    absent = []
    for cell in troubleshooting_rows():
        for quoted in re.findall(r"`([^`]+)`", cell):
            for fragment in PLACEHOLDER.split(quoted):
                fragment = fragment.strip(" .,:;()'")
                if len(fragment) >= 4 and not any(fragment in s for s in strings):
                    absent.append((quoted, fragment))
    assert not absent, f"messages the README quotes that envcheck never prints: {absent}"


def test_troubleshooting_rows_name_real_checks():
    ids = [c.check_id for c in REGISTRY]
    unknown = []
    for cell in troubleshooting_rows():
        outside_quotes = re.sub(r"`[^`]*`", "", cell)
        for pattern in re.findall(r"\b[a-z]+\.[a-z_*]+\b", outside_quotes):
            if not fnmatch.filter(ids, pattern):
                unknown.append(pattern)
    assert not unknown, f"the troubleshooting table names checks that do not exist: {unknown}"


def test_json_example_is_a_valid_report():
    body = section("### JSON report")
    example = re.search(r"```json\n(.*?)```", body, re.S)
    assert example, "no ```json block in the JSON report section"
    report = json.loads(example.group(1))
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    counts = report["counts"]
    worst = next((s for s in ("fail", "warn", "pass") if counts[s]), "skip")
    assert report["status"] == worst
    assert report["exit_code"] == (1 if worst == "fail" else 0)


def test_benchmark_table_is_generated_from_the_recorded_runs():
    """`python bench/mnist.py --table` writes what the recorded runs give."""
    spec = importlib.util.spec_from_file_location(
        "readme_table", REPO / "bench" / "readme_table.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    results = table.load_all()
    assert results, f"no recorded runs in {table.RESULTS_DIR}"
    assert table.current(README) == table.render(results), (
        "the README's benchmark table differs from bench/results/: "
        "run `python bench/mnist.py --table`"
    )


def test_the_test_command_names_the_python_versions_run_tests_accepts():
    script = (REPO / "tools" / "run-tests.sh").read_text(encoding="utf-8")
    low, high = re.search(r"\(3, (\d+)\) <= v\[:2\] <= \(3, (\d+)\)", script).groups()
    versions = f"Python 3.{low}-3.{high}"
    assert versions in section("## Quick start"), f"Quick start should name {versions}"
    assert versions in script


def test_every_readme_path_exists():
    """Files and folders the README names in backticks exist in the checkout."""
    named = re.findall(
        r"`((?:envcheck|tools|bench|tests|locks|requirements|\.ci)/[^` *<]+)", README
    )
    missing = sorted({p for p in named if not (REPO / p).exists()})
    assert not missing, missing
