"""Shared fixtures: where the repo and ../shared are, and how to run envcheck for real."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.errors import EnvcheckError
from envcheck.mnist import locate_mnist

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
NO_MNIST = (
    "MNIST not found ($ENVCHECK_DATA_DIR, the user cache, ../shared/data/mnist): "
    "run `python -m envcheck fetch-mnist` once"
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


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without envcheck's steering variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENVCHECK_")
        and k not in ("GITHUB_STEP_SUMMARY", "CONDA_PREFIX", "PIXI_ENVIRONMENT_NAME")
    }
    env.update(extra)
    return env


def run_envcheck(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "envcheck", *args],
        cwd=cwd or REPO,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
