"""Ctrl-C, SIGTERM and SIGHUP end every process a run started and remove its temp files.

Real signals to a real `python -m envcheck`; the processes a run started are found by the
private TMPDIR each test gives it (every child inherits it), so nothing else on the machine
is mistaken for a leftover.
"""

from __future__ import annotations

import importlib.util
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
NAME = lambda sig: sig.name  # noqa: E731 (test ids: [SIGHUP], not [1])


def started_by(tmpdir: Path) -> dict[int, str]:
    """pid -> command line of every live process whose TMPDIR is tmpdir or inside it."""
    marker = f"TMPDIR={tmpdir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            # torchrun and its ranks get a TMPDIR inside it (the launcher's temp folder)
            if not any(v == marker or v.startswith(marker + b"/") for v in environ):
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


def skip_if_ignored(sig: signal.Signals) -> None:
    """Under nohup SIGHUP is ignored, and envcheck rightly keeps it ignored (the user asked
    for that): a SIGHUP test has nothing to observe there, so it says so instead of failing."""
    if signal.getsignal(sig) is signal.SIG_IGN:
        pytest.skip(
            f"{sig.name} is ignored in this run (nohup?), and envcheck keeps an ignored "
            "signal ignored: run the tests without nohup to test it"
        )


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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=NAME)
def test_signal_during_verify_ends_the_probe_and_its_temp_dir(tmp_path: Path, sig):
    skip_if_ignored(sig)
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=NAME)
def test_signal_ends_the_probes_children_too(tmp_path: Path, sig):
    skip_if_ignored(sig)
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


# ---------------------------------------------------------------- issue 23: signals


def test_the_sighup_tests_skip_under_nohup_saying_why(tmp_path: Path):
    # nohup: SIGHUP ignored, which every child inherits
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-k", "SIGHUP and not nohup",
         "-rs", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t")],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 skipped" in proc.stdout and "SIGHUP is ignored in this run (nohup?)" in proc.stdout


# The CLI started after the interpreter is up (the marker line): any Ctrl-C from here on is
# envcheck's to handle. (Before it, Python itself is still starting: not envcheck's code.)
EARLY = """
import runpy, sys
sys.stderr.write("started\\n"); sys.stderr.flush()
sys.argv = ["envcheck", *sys.argv[1:]]
runpy.run_module("envcheck", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.15, 0.2, 0.3, 0.45])
def test_ctrl_c_in_the_first_fraction_of_a_second_is_no_traceback(tmp_path: Path, delay):
    facts = tmp_path / "facts.json"
    facts.write_text("{}")
    proc = subprocess.Popen(
        [sys.executable, "-c", EARLY, "report", str(facts)],
        cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr.readline() == "started\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # interrupted (130), done before the signal came (1: the file is no report), or ended
    # by it while the interpreter was already shutting down (-2), all without a traceback
    assert proc.returncode in (130, 1, -signal.SIGINT), err


def states(pids) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            out[pid] = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
    return out


HANDLED_DRIVER = """
import sys
from envcheck import interrupts
from envcheck.runner import run_probe
try:
    with interrupts.handled():
        run_probe(sys.argv[2], {"gpus": 0, "timeout": 120}, timeout=600, extra_path=[sys.argv[1]])
except interrupts.Interrupted as exc:
    sys.exit(exc.exit_code)
"""


def test_ctrl_z_and_fg_reach_the_probes_process_group(tmp_path: Path):
    # the probe runs in its own session: the terminal's SIGTSTP never reaches it by itself
    tmpdir = tmp_path / "tmp"
    proc = start(["-c", HANDLED_DRIVER, str(TESTS_DIR), "probes_for_tests:spawn_and_hang"], tmpdir)
    try:
        wait_for(lambda: len(started_by(tmpdir)) >= 3, 60, "the probe's child")
        children = [pid for pid in started_by(tmpdir) if pid != proc.pid]
        proc.send_signal(signal.SIGTSTP)  # Ctrl-Z
        wait_for(lambda: set(states([proc.pid, *children]).values()) == {"T"}, 20,
                 "envcheck, its probe and the probe's child to stop")  # fmt: skip
        proc.send_signal(signal.SIGCONT)  # fg
        wait_for(lambda: "T" not in states([proc.pid, *children]).values(), 20,
                 "all of them to continue")  # fmt: skip
    except BaseException:  # leave nothing stopped or running behind a failed test
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()
        for pid in started_by(tmpdir):
            os.kill(pid, signal.SIGKILL)
        raise
    interrupt(proc, signal.SIGTERM, tmpdir)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_sigterm_during_the_distributed_check_leaves_no_temp_folder(tmp_path: Path):
    # the verify path: envcheck (signals handled) -> probe worker -> torchrun -> 2 ranks;
    # rank 1 hangs, so the check is still running when SIGTERM comes
    tmpdir = tmp_path / "tmp"
    args = ["-c", HANDLED_DRIVER, str(TESTS_DIR), "envcheck.distributed.launch:probe"]
    proc = start(args, tmpdir, ENVCHECK_DIST_FAULT="hang:1")
    wait_for(lambda: len(started_by(tmpdir)) >= 5, 120, "torchrun and both ranks")
    # (inside the probe's own envcheck-* folder, where the launcher keeps it)
    wait_for(lambda: any(tmpdir.rglob("envcheck-dist-*")), 30,
             "the distributed check's temp folder")  # fmt: skip
    interrupt(proc, signal.SIGTERM, tmpdir)  # asserts: no process, no envcheck-dist-*, no
    # torchelastic_* left in TMPDIR


SWALLOWED = """
import os, signal, time, weakref
from envcheck import interrupts
class Thing: pass
try:
    with interrupts.handled():
        thing = Thing()
        ref = weakref.ref(thing, lambda r: (os.kill(os.getpid(), signal.SIGTERM), [0] * 1000))
        del thing  # the signal lands in the weakref callback, where exceptions are ignored
        time.sleep(5)
    print("the interrupt was lost")
except interrupts.Interrupted as exc:
    print("interrupted by", exc.name)
"""


def test_an_interrupt_inside_a_callback_is_not_lost():
    # seen at start-up: Ctrl-C inside an import-lock callback printed "Exception ignored"
    # with a traceback, and the command went on
    proc = subprocess.run([sys.executable, "-c", SWALLOWED], cwd=REPO, env=clean_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.stdout.strip() == "interrupted by SIGTERM", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
