"""tools/run-tests.sh refuses a Python the pinned test packages cannot install on, in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(python: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "tools" / "run-tests.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": python, "ENVCHECK_TEST_VENV": str(tmp_path / "v")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_older_python_stops_with_one_line_naming_the_versions(tmp_path):
    # This interpreter, made to report 3.9: the script's own check must refuse it.
    fake = tmp_path / "python3.9"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "code = sys.argv[2]; sys.argv = ['-c'] + sys.argv[3:]\n"
        "sys.version_info = (3, 9, 18, 'final', 0)\n"
        "exec(code)\n"
    )
    fake.chmod(0o755)
    proc = _run(str(fake), tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [
        "run-tests: Python 3.9 cannot install the pinned test packages; use Python 3.11-3.13, "
        "e.g. PYTHON=python3.12 bash tools/run-tests.sh"
    ]
    assert not (tmp_path / "v").exists()  # checked before anything is created


def test_a_missing_python_stops_with_one_line(tmp_path):
    proc = _run(str(tmp_path / "no-such-python"), tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "install Python 3.11-3.13" in proc.stderr
