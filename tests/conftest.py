"""Shared fixtures: where the repo and ../shared are, and how to run envcheck for real."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import envcheck.verify
from envcheck.mnist import FILES as MNIST_FILES
from envcheck.profiles import FRAMEWORKS_ENV, KNOWN_FRAMEWORKS
from envcheck.report import json_report, junit

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MNIST_DIR = SHARED / "data" / "mnist"
SNAPSHOT_DIR = SHARED / "conda-forge-snapshot"

HAVE_MNIST = all((MNIST_DIR / name).is_file() for name in MNIST_FILES)
NO_MNIST = f"MNIST files not found at {MNIST_DIR} (../shared beside the checkout)"
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=NO_MNIST)


@pytest.fixture
def mnist_dir() -> Path:
    if not HAVE_MNIST:
        pytest.skip(NO_MNIST)
    return MNIST_DIR


@pytest.fixture
def snapshot_dir() -> Path:
    if not (SNAPSHOT_DIR / "linux-64" / "repodata.json").is_file():
        pytest.skip(f"conda-forge snapshot not found at {SNAPSHOT_DIR}")
    return SNAPSHOT_DIR


def _frameworks_here() -> tuple[str, ...]:
    """The frameworks this environment has: $ENVCHECK_FRAMEWORKS (what the pixi env sets for
    its platform, e.g. torch alone on osx-arm64 and win-64), else those that are installed."""
    named = os.environ.get(FRAMEWORKS_ENV)
    if named:
        return tuple(f.strip() for f in named.split(",") if f.strip() in KNOWN_FRAMEWORKS)
    return tuple(f for f in KNOWN_FRAMEWORKS if importlib.util.find_spec(f) is not None)


# Tests run and assert on these frameworks only, so the suite passes without TensorFlow.
FRAMEWORKS = _frameworks_here()


def needs_framework(name: str):
    how = f"${FRAMEWORKS_ENV} names {','.join(FRAMEWORKS) or 'none'}"
    if not os.environ.get(FRAMEWORKS_ENV):
        how = "not installed"
    return pytest.mark.skipif(
        name not in FRAMEWORKS, reason=f"{name} is not in this environment ({how})"
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without envcheck's steering variables, plus ``extra``.

    ENVCHECK_FRAMEWORKS is set to the frameworks this environment has, so a plain `verify`
    checks those (and nothing that is absent here), as the pixi env's activation would.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENVCHECK_")
        and k not in ("GITHUB_STEP_SUMMARY", "CONDA_PREFIX", "PIXI_ENVIRONMENT_NAME")
    }
    env[FRAMEWORKS_ENV] = ",".join(FRAMEWORKS)
    env.update(extra)
    return env


def run_envcheck(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "envcheck", *args],
        cwd=cwd or REPO,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if args[:1] == ("verify",):
        validate_written_reports(args, cwd or REPO)
    return proc


def closed_port_url() -> str:
    """A mirror URL where nothing listens: what an offline machine sees."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


# --- Every report a test produces is validated here, not by hand in each test. -------------
# Reports written by `envcheck verify --json/--junit` (run_envcheck) are validated as soon as
# the run ends; reports built in-process by envcheck.verify.verify() when the test ends.

REPORT_SCHEMA = json.loads(json_report.SCHEMA_PATH.read_text(encoding="utf-8"))
JUNIT_XSD = json_report.SCHEMA_PATH.with_name("junit.xsd")


def validate_json_report(text: str) -> None:
    jsonschema.validate(json.loads(text), REPORT_SCHEMA)


def validate_junit_report(text: str) -> None:
    try:
        import xmlschema  # in requirements/test.txt; the pixi envs (conda-forge) lack it
    except ImportError:
        ET.fromstring(text)  # there: well-formed only
        return
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(text)


def validate_written_reports(args: tuple[str, ...], cwd: Path) -> None:
    for flag, validate in (("--json", validate_json_report), ("--junit", validate_junit_report)):
        if flag in args[:-1]:
            path = Path(cwd, args[args.index(flag) + 1])
            if path.is_file():  # a usage error writes nothing, which other asserts check
                validate(path.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def validate_reports(monkeypatch):
    """Validate, at the end of the test, every report envcheck.verify.verify() built in it."""
    built = []
    real = envcheck.verify.Report

    def record(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(envcheck.verify, "Report", record)
    yield
    for report in built:
        validate_json_report(json_report.to_json(report))
        validate_junit_report(junit.to_junit(report))
