"""Shared fixtures: where the repo and ../shared are, and how to run envcheck for real."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import envcheck.verify
from envcheck.errors import EnvcheckError
from envcheck.mnist import locate_mnist
from envcheck.profiles import FRAMEWORKS_ENV, KNOWN_FRAMEWORKS
from envcheck.report import json_report, junit

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SNAPSHOT_DIR = SHARED / "conda-forge-snapshot"


def find_mnist() -> Path | None:
    """The folder holding the four original .gz files, found the way verify finds MNIST.

    $ENVCHECK_DATA_DIR, then the user cache (`envcheck fetch-mnist` fills it), then
    ../shared/data/mnist beside the checkout. Files are checked against their digests.
    """
    with contextlib.suppress(EnvcheckError):
        paths = locate_mnist(download=False)
        folders = {p.parent for p in paths.values()}
        if len(folders) == 1 and all(p.name == name for name, p in paths.items()):
            return folders.pop()  # tests copy the .gz files by name: other layouts won't do
    shared = SHARED / "data" / "mnist"
    with contextlib.suppress(EnvcheckError):
        locate_mnist(shared, download=False)
        return shared
    return None


MNIST_DIR = find_mnist() or SHARED / "data" / "mnist"
HAVE_MNIST = find_mnist() is not None


def this_python() -> str:
    """The interpreter running the tests, as a user can type it (the test venv's, which has
    envcheck installed; a bare `python` may be another)."""
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(exe.relative_to(Path.cwd()))
    return str(exe)


NO_MNIST = (
    "MNIST not found ($ENVCHECK_DATA_DIR, the user cache, ../shared/data/mnist): "
    f"run `{this_python()} -m envcheck fetch-mnist` once"
)
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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """End the run saying how many tests were skipped and why, with the fix for missing data.

    A wrapper, so these lines come after pytest's own per-test summary, just above the counts.
    """
    yield
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.write_sep("-", f"{len(skipped)} test(s) skipped")
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{count:4d} skipped: {reason}")


# What this machine has, so tests that assume a GPU-less machine with CPU builds of both
# frameworks (the test venv) skip on a GPU machine, or one without TensorFlow, and pass there.
def _nvidia_driver_present() -> bool:
    import ctypes

    try:
        ctypes.CDLL("nvml.dll" if sys.platform == "win32" else "libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _torch_is_cpu_build() -> bool:
    """torch/version.py says `cuda = None` for a CPU build; read it without importing torch."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return False
    text = Path(spec.origin).with_name("version.py").read_text(encoding="utf-8")
    found = re.search(r"^cuda\b[^=]*=\s*(.+)$", text, re.MULTILINE)
    return bool(found) and found.group(1).strip() == "None"


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


NVIDIA_DRIVER = _nvidia_driver_present()
needs_no_gpu = pytest.mark.skipif(
    NVIDIA_DRIVER, reason="an NVIDIA driver answers here; this test needs a machine without one"
)
needs_tensorflow = pytest.mark.skipif(
    not _installed("tensorflow"), reason="tensorflow is not installed"
)
needs_cpu_torch = pytest.mark.skipif(
    not _torch_is_cpu_build(), reason="torch is not installed as a CPU build here"
)
# the test venv's machine: no NVIDIA driver, CPU builds of torch and TensorFlow
needs_gpu_less_cpu_builds = pytest.mark.skipif(
    NVIDIA_DRIVER or not _torch_is_cpu_build() or not _installed("tensorflow"),
    reason="needs a machine without an NVIDIA driver, with CPU torch and TensorFlow",
)


FAKE_NVML_C = Path(__file__).parent / "data" / "fake_nvml.c"


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory) -> Path:
    """A libnvidia-ml.so.1 with NVML's C ABI (tests/data/fake_nvml.c), built here."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not sys.platform.startswith("linux"):
        pytest.skip("needs a C compiler on Linux to build the stand-in NVML library")
    out = tmp_path_factory.mktemp("nvml")
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(out / "libnvidia-ml.so.1"), str(FAKE_NVML_C)],
        check=True,
    )
    return out


@pytest.fixture
def without_nvidia_ml_py(tmp_path) -> list[str]:
    """A path entry that hides nvidia-ml-py (module pynvml), as in conda-forge envs."""
    (tmp_path / "pynvml.py").write_text('raise ImportError("nvidia-ml-py is not installed")\n')
    return [str(tmp_path)]


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
