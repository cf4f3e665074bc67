"""The README and the docs site (docs/**/*.md) against the code: usage blocks, every envcheck
command and option quoted anywhere, troubleshooting messages, the JSON example and reference,
figures, paths and the site's navigation.

Generic on purpose: every subcommand and option the code has must be in the usage block, and
every one any page names must exist, whatever subcommands or pages are added later.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import json
import re
import shlex

import jsonschema
import pytest
from conftest import REPO

from envcheck.checks import REGISTRY
from envcheck.cli import build_parser
from envcheck.report.json_report import SCHEMA_PATH

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS_DIR = REPO / "docs"
# every page, whoever wrote it: the README and the site's pages
PAGES = {"README.md": README} | {
    str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in sorted(DOCS_DIR.rglob("*.md"))
}


def page(path: str) -> str:
    """The text of one docs page (relative to the repository root)."""
    assert path in PAGES, f"{path} is missing"
    return PAGES[path]


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
        pytest.fail(f"no section {title!r} where expected")
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
    cli = page("docs/reference/cli.md")
    documented = usage_by_command(first_code_block(section("## envcheck", cli)), "envcheck")
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
        first_code_block(section("# Benchmark", page("docs/benchmark.md"))),
        "python bench/mnist.py",
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
    """The first cell of every row of every table headed "| message" on any page."""
    rows = []
    for text in PAGES.values():
        in_table = False
        for line in text.splitlines():
            if line.startswith("| message"):
                in_table = True
            elif not line.startswith("|"):
                in_table = False
            elif in_table and not line.startswith("|---"):
                rows.append(line.split("|")[1].strip())
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
    assert not absent, f"messages the docs quote that envcheck never prints: {absent}"


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
    body = section("## Example", page("docs/reference/json-report.md"))
    example = re.search(r"```json\n(.*?)```", body, re.S)
    assert example, "no ```json block in the JSON report section"
    report = json.loads(example.group(1))
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    counts = report["counts"]
    worst = next((s for s in ("fail", "warn", "pass") if counts[s]), "skip")
    assert report["status"] == worst
    assert report["exit_code"] == (1 if worst == "fail" else 0)
    assert "/work/" not in example.group(1), "the example shows a developer's own path"


def test_json_reference_is_generated_from_the_schema():
    spec = importlib.util.spec_from_file_location("schema_doc", REPO / "tools" / "schema_doc.py")
    schema_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema_doc)
    text = schema_doc.PAGE.read_text(encoding="utf-8")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema_doc.splice(text, schema_doc.render(schema)) == text, (
        "docs/reference/json-report.md differs from schema.json: run python tools/schema_doc.py"
    )
    for name in schema["properties"]:  # every field is documented
        assert f"| `{name}` |" in text, name


def test_benchmark_table_is_generated_from_the_recorded_runs():
    """`python bench/mnist.py --table` writes what the recorded runs give."""
    spec = importlib.util.spec_from_file_location(
        "readme_table", REPO / "bench" / "readme_table.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    results = table.load_all()
    assert results, f"no recorded runs in {table.RESULTS_DIR}"
    assert table.current(table.PAGE.read_text(encoding="utf-8")) == table.render(results), (
        "the benchmark table of docs/benchmark.md differs from bench/results/: "
        "run `python bench/mnist.py --table`"
    )


def test_the_test_command_names_the_python_versions_run_tests_accepts():
    script = (REPO / "tools" / "run-tests.sh").read_text(encoding="utf-8")
    low, high = re.search(r"\(3, (\d+)\) <= v\[:2\] <= \(3, (\d+)\)", script).groups()
    versions = f"Python 3.{low}-3.{high}"
    assert versions in section("## Quick start"), f"Quick start should name {versions}"
    assert versions in script


def test_every_path_named_exists():
    """Files and folders any page names in backticks exist in the checkout."""
    missing = []
    for where, text in PAGES.items():
        named = re.findall(
            r"`((?:envcheck|tools|bench|tests|locks|requirements|docs|\.ci|\.github)/[^` *<]+)",
            text,
        )
        missing += [(where, p) for p in sorted(set(named)) if not (REPO / p).exists()]
    assert not missing, missing


# `pixi run [-e ENV] TASK` runs `python -m envcheck TASK` for these tasks (pixi.toml)
PIXI_TASKS = {"verify", "info", "fetch-mnist", "doctor"}


def quoted_commands(text: str) -> list[str]:
    """Every code span and every indented code line of a page, whitespace made single, with
    shell comments, line continuations and usage brackets taken out."""
    # a span may wrap within a paragraph, never across one; table rows pair their own
    blocks = [
        part
        for block in re.split(r"\n\s*\n", text)
        for part in (block.splitlines() if block.lstrip().startswith("|") else [block])
    ]
    spans = [" ".join(s.split()) for b in blocks for s in re.findall(r"`([^`]+)`", b)]
    lines = [line[4:] for line in text.splitlines() if line.startswith("    ")]
    out = []
    for cmd in spans + lines:
        cmd = re.sub(r"\s#.*", "", cmd).replace("\\", " ")
        out.append(cmd.replace("[", " ").replace("]", " "))
    return out


def envcheck_invocations(cmd: str) -> list[tuple[str, list[str]]]:
    """(subcommand, options) of each envcheck call in one command line."""
    try:
        tokens = shlex.split(cmd, comments=False)
    except ValueError:
        tokens = cmd.split()
    calls = []
    for i, tok in enumerate(tokens):
        sub = None
        if tok == "envcheck" and i + 1 < len(tokens):
            sub = tokens[i + 1]
        elif tok == "run" and i > 0 and tokens[i - 1] == "pixi":
            rest = tokens[i + 1 :]
            while rest and (rest[0].startswith("--") or rest[0] == "-e"):  # pixi's own options
                rest = rest[2:] if rest[0] == "-e" else rest[1:]
            if rest and rest[0] in PIXI_TASKS:
                sub = rest[0]
                i = tokens.index(rest[0], i) - 1
        if sub is None or not re.fullmatch(r"[a-z][a-z-]*", sub):
            continue
        opts = []
        for t in tokens[i + 2 :]:
            if t in ("|", "&&", ";", "||") or t == "envcheck" or t.startswith("$("):
                break
            if t.startswith("--") and t != "--":  # a bare -- only hands the rest over
                opts.append(t.split("=", 1)[0].rstrip(",.;:)"))
        calls.append((sub, opts))
    return calls


def test_every_quoted_envcheck_command_exists():
    """`envcheck SUB --opt`, `python -m envcheck SUB`, `pixi run -e ENV verify --opt`: on any
    page, the subcommand and each option exist in the code, and the env in pixi.toml."""
    commands = subcommands(build_parser())
    try:
        import tomllib
    except ImportError:  # Python < 3.11 (the cuda11 env)
        tomllib = pytest.importorskip("tomli")
    envs = set(tomllib.loads((REPO / "pixi.toml").read_text(encoding="utf-8"))["environments"])
    wrong, seen = [], 0
    for where, text in PAGES.items():
        for cmd in quoted_commands(text):
            for env in re.findall(r"(?:pixi (?:run|install|reinstall)(?: --\S+)*) -e (\S+)", cmd):
                env = env.strip("\"'")
                placeholder = env in ("ENV", "NAME") or env.startswith(("$", "<"))
                if env not in envs and not placeholder:
                    wrong.append((where, cmd, f"no pixi env {env}"))
            for sub, opts in envcheck_invocations(cmd):
                seen += 1
                if sub not in commands:
                    wrong.append((where, cmd, f"no subcommand {sub}"))
                    continue
                known = {o for a in commands[sub]._actions for o in a.option_strings}
                wrong += [(where, cmd, f"{sub} has no {o}") for o in opts if o not in known]
    assert seen >= 30, f"only {seen} envcheck commands found: is the search broken?"
    assert not wrong, wrong


def test_a_wrong_command_on_a_page_is_caught():
    """The search above sees the forms the pages use (a test that can fail)."""
    calls = envcheck_invocations("pixi run -e cuda12 verify --data-dir /x --bogus")
    assert calls == [("verify", ["--data-dir", "--bogus"])]
    assert envcheck_invocations("python -m envcheck report a.json --junit f.xml") == [
        ("report", ["--junit"])
    ]


def test_the_site_lists_every_page():
    """mkdocs.yml's nav names every page under docs/ and only pages that exist."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))

    def files(nav):
        for item in nav:
            for value in item.values() if isinstance(item, dict) else [item]:
                yield from files(value) if isinstance(value, list) else [value]

    listed = set(files(config["nav"]))
    on_disk = {str(p.relative_to(DOCS_DIR)) for p in DOCS_DIR.rglob("*.md")}
    assert listed == on_disk, (sorted(listed - on_disk), sorted(on_disk - listed))


def test_readme_is_short():
    """The README is what a newcomer reads in five minutes; the rest lives in docs/."""
    words = len(README.split())
    assert words <= 1000, f"README.md has {words} words"


def test_readme_links_into_the_docs_resolve():
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 10, links
    missing = sorted({p for p in links if not (REPO / p).is_file()})
    assert not missing, missing
