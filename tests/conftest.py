"""Shared fixtures: where the repo and ../shared are, and how to run envcheck for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.mnist import FILES as MNIST_FILES

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
