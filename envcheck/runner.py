"""Run a probe function in its own process with a timeout.

A hang, a segfault or an abort in a framework becomes data (ProbeOutcome)
instead of taking envcheck down with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import interrupts

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
# Of a probe's stderr only the end is used (diagnosis rules, the last line in messages).
STDERR_KEPT = 8000


@dataclass
class ProbeOutcome:
    target: str
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    # error | timeout | signal | exit: how the probe failed, for the message
    failure: str | None = None
    error: str | None = None
    user_error: bool = False
    seconds: float = 0.0
    stderr_tail: str = ""
    # the end of stderr, kept whole for rules that look for a framework's log lines
    stderr: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeOutcome:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def describe_failure(self) -> str:
        if self.failure == "timeout":
            return f"timed out after {self.seconds:.0f} s (hung)"
        if self.failure == "signal":
            return f"crashed: {self.error}"
        return self.error or "failed"


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _stderr_tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


# A folder the probe may fill (caches, builds): inside the run's temp folder, so it goes with
# it even when the probe is killed.
SCRATCH_ENV = "ENVCHECK_PROBE_SCRATCH"


def _child_env(extra_path: list[str], scratch: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if scratch:
        env[SCRATCH_ENV] = scratch
    paths = [PACKAGE_PARENT, *extra_path]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # TF's "Cannot dlopen some GPU libraries" is a warning (level 1): keep warnings visible
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


def run_probe(
    target: str,
    args: dict[str, Any] | None = None,
    timeout: float = 120.0,
    extra_path: list[str] | None = None,
) -> ProbeOutcome:
    """Run ``module:function(args)`` in a fresh interpreter; never raises for probe failures.

    Any exception while the probe runs (Ctrl-C, envcheck.interrupts.Interrupted) kills the
    probe's whole process group and removes its temp folder before it propagates.
    """
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="envcheck-") as tmp:
        args_path = Path(tmp, "args.json")
        out_path = Path(tmp, "out.json")
        args_path.write_text(json.dumps(args or {}), encoding="utf-8")
        cmd = [sys.executable, "-m", "envcheck.worker", target, str(args_path), str(out_path)]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=_child_env(extra_path or [], scratch=tmp),
            start_new_session=True,  # so a timeout can kill the probe's own children too
        )
        interrupts.register(proc)  # Ctrl-Z, SIGCONT and a graceful end reach its group
        stderr_reader = TailReader(proc.stderr)
        try:
            try:
                proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
        finally:
            # After a timeout, or when the wait is interrupted: nothing the probe started
            # may outlive it (on a GPU it would keep holding memory).
            _end_group(proc)
            stderr = stderr_reader.finish()
        seconds = time.monotonic() - start
        tail = _stderr_tail(stderr)
        if timed_out:
            return ProbeOutcome(
                target,
                False,
                failure="timeout",
                error=f"timed out after {timeout:.0f} s",
                seconds=seconds,
                stderr_tail=tail,
            )
        if proc.returncode < 0:
            name = _signal_name(proc.returncode)
            return ProbeOutcome(
                target,
                False,
                failure="signal",
                error=f"killed by {name}",
                seconds=seconds,
                stderr_tail=tail,
                stderr=stderr,
            )
        if not out_path.exists():
            return ProbeOutcome(
                target,
                False,
                failure="exit",
                error=f"exited with code {proc.returncode} before writing a result",
                seconds=seconds,
                stderr_tail=tail,
                stderr=stderr,
            )
        result = json.loads(out_path.read_text(encoding="utf-8"))
    if result.get("ok"):
        return ProbeOutcome(
            target, True, data=result["data"], seconds=seconds, stderr_tail=tail, stderr=stderr
        )
    return ProbeOutcome(
        target,
        False,
        failure="error",
        error=result.get("error"),
        user_error=bool(result.get("user_error")),
        seconds=seconds,
        stderr_tail=tail,
        stderr=stderr,
    )


class TailReader:
    """Drain a child's output pipe while it runs, keeping only the last ``keep`` bytes.

    A child that floods its output must neither block on a full pipe nor fill envcheck's memory.
    """

    def __init__(self, stream: Any, keep: int = STDERR_KEPT) -> None:
        self._stream = stream
        self._keep = keep
        self._tail = b""
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self._stream.fileno()
        while True:
            try:
                block = os.read(fd, 1 << 16)
            except OSError:
                return
            if not block:
                return
            self._tail = (self._tail + block)[-self._keep :]

    def finish(self) -> str:
        # The group is dead, so the pipe's writers are gone; a grandchild that escaped the
        # group could hold it open, hence the bound on the wait.
        self._thread.join(timeout=5)
        self._stream.close()
        return self._tail.decode("utf-8", errors="replace")


def _end_group(proc: subprocess.Popen) -> None:
    """Kill the probe's process group (if anything of it is left) and reap the probe."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        # No group left (every member exited), or no process groups (Windows).
        if proc.poll() is None:
            proc.kill()
    proc.wait()
