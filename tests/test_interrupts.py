"""Ctrl-C, SIGTERM and SIGHUP end every process a run started and remove its temp files.

Real signals to a real `python -m envcheck`; the processes a run started are found by the
private TMPDIR each test gives it (every child inherits it), so nothing else on the machine
is mistaken for a leftover.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HAVE_MNIST, MNIST_DIR, NO_MNIST, REPO, clean_env

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds processes through /proc (Linux)"
)
TESTS_DIR = Path(__file__).parent
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def started_by(tmpdir: Path) -> dict[int, str]:
    """pid -> command line of every live process whose environment has TMPDIR=tmpdir."""
    marker = f"TMPDIR={tmpdir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is dead, only not reaped yet
            found[int(entry.name)] = cmdline
    return found


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start(args: list[str], tmpdir: Path, **extra: str) -> subprocess.Popen:
    tmpdir.mkdir()
    env = clean_env(TMPDIR=str(tmpdir), **extra)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(proc: subprocess.Popen, sig: signal.Signals, tmpdir: Path) -> str:
    """Send ``sig``; assert the exit code, no surviving process, no temp files; return stderr."""
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    survivors = started_by(tmpdir)
    for pid in survivors:  # don't leave them to the next test, but fail
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == EXIT[sig], stderr
    assert survivors == {}
    assert sorted(p.name for p in tmpdir.iterdir()) == []
    return stderr


def worker_running(tmpdir: Path, target: str = "envcheck.worker"):
    return lambda: [c for c in started_by(tmpdir).values() if target in c]


def probe_running(tmpdir: Path, probe: str):
    """A warm worker names itself after the probe it runs (/proc/PID/comm)."""

    def running() -> list[int]:
        found = []
        for pid in started_by(tmpdir):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == probe:
                    found.append(pid)
            except OSError:
                pass
        return found

    return running


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_verify_ends_the_probe_and_its_temp_dir(tmp_path: Path, sig):
    tmpdir = tmp_path / "tmp"
    proc = start(["-m", "envcheck", "verify", "--framework", "torch", "--no-training"], tmpdir)
    wait_for(worker_running(tmpdir), 120, "the first probe")
    stderr = interrupt(proc, sig, tmpdir)
    assert f"interrupted by {sig.name}" in stderr
    assert "Traceback" not in stderr


@pytest.mark.skipif(not HAVE_MNIST, reason=NO_MNIST)
def test_ctrl_c_during_torch_training(tmp_path: Path):
    # The case of the report: the training worker kept computing after Ctrl-C.
    tmpdir = tmp_path / "tmp"
    args = ["-m", "envcheck", "verify", "--framework", "torch", "--data-dir", str(MNIST_DIR)]
    proc = start(args, tmpdir)
    wait_for(probe_running(tmpdir, "torch.train"), 300, "training.torch")
    time.sleep(2)  # into the training loop
    interrupt(proc, signal.SIGINT, tmpdir)


SPAWNING_DRIVER = """
import sys
from envcheck import interrupts
from envcheck.runner import run_probe
try:
    with interrupts.handled():
        run_probe("probes_for_tests:spawn_and_hang", {}, timeout=600, extra_path=[sys.argv[1]])
except interrupts.Interrupted as exc:
    sys.exit(exc.exit_code)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_ends_the_probes_children_too(tmp_path: Path, sig):
    tmpdir = tmp_path / "tmp"
    proc = start(["-c", SPAWNING_DRIVER, str(TESTS_DIR)], tmpdir)
    # the driver, the probe and its grandchild
    wait_for(lambda: len(started_by(tmpdir)) >= 3, 60, "the probe's child")
    interrupt(proc, sig, tmpdir)


def test_killed_envcheck_takes_its_probe_along(tmp_path: Path):
    # SIGKILL leaves envcheck no chance to clean up; the probe notices it is orphaned.
    tmpdir = tmp_path / "tmp"
    proc = start(["-c", SPAWNING_DRIVER, str(TESTS_DIR)], tmpdir)
    wait_for(lambda: len(started_by(tmpdir)) >= 3, 60, "the probe's child")
    proc.kill()
    proc.communicate()
    try:
        wait_for(lambda: not started_by(tmpdir), 15, "the orphaned probe to end itself")
    finally:
        for pid in started_by(tmpdir):
            os.kill(pid, signal.SIGKILL)
