"""One supervisor for every child process envcheck starts (probes, warm workers, torchrun).

A hang, a segfault or an abort in a framework becomes data (ProbeOutcome) instead of taking
envcheck down with it. Spawn, drain, deadline, kill group and classify exit live here once;
the probe host (probehost.py) and the torchrun launcher (distributed/launch.py) use them.
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
# A probe's result is facts (kilobytes); anything bigger is not a result envcheck wrote.
MAX_RESULT_BYTES = 16 * 2**20


# What a replay says of a probe its recording lacks (facts saved by an older envcheck, or with
# --no-training): verify and the compile checks treat it as a gap, not as a broken env.
NOT_RECORDED = "not in the recorded facts"


@dataclass
class ProbeOutcome:
    target: str
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    # How the probe failed: "error" (the call raised), "timeout" (hung, killed), "signal" /
    # "exit" (its process died during this call), for the message and the fix.
    failure: str | None = None
    error: str | None = None
    user_error: bool = False
    seconds: float = 0.0
    stderr_tail: str = ""
    # the end of stderr, kept whole for rules that look for a framework's log lines
    stderr: str = ""
    # where it ran: shared (a warm worker per framework), fresh, launcher, inprocess, replay
    isolation: str = ""
    # seconds per phase: start, import, init, data, work, eval (what the probe host measured)
    timing: dict[str, float] = field(default_factory=dict)
    # what the report should say about how it ran (a replaced worker, a signal at exit)
    notes: list[str] = field(default_factory=list)

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


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(code: int) -> str:
    """'signal SIGKILL' or 'exit code 3': how a child ended."""
    return f"signal {signal_name(code)}" if code < 0 else f"exit code {code}"


def stderr_tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


# A folder the probe may fill (caches, builds): inside the run's temp folder, so it goes with
# it even when the probe is killed.
SCRATCH_ENV = "ENVCHECK_PROBE_SCRATCH"


def child_env(
    extra_path: list[str] | None = None,
    extra: dict[str, str] | None = None,
    scratch: str | None = None,
) -> dict[str, str]:
    """The environment of a child: envcheck importable from this checkout first."""
    env = dict(os.environ, **(extra or {}))
    if scratch:
        env[SCRATCH_ENV] = scratch
    paths = [PACKAGE_PARENT, *(extra_path or [])]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # TF's "Cannot dlopen some GPU libraries" is a warning (level 1): keep warnings visible
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


class Child:
    """A started child process: its output drained, its end bounded, its group killable.

    ``own_group``: the child leads a new session, and ending it kills that whole group (a
    probe's compilers and loaders die with it). torchrun instead gets ``stop_signal`` first
    (it ends its ranks, which run in sessions of their own) and SIGKILL after ``grace``.
    """

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        *,
        keep: int = STDERR_KEPT,
        own_group: bool = True,
        stop_signal: int = signal.SIGKILL,
        grace: float = 0.0,
        merge_output: bool = False,
        pipes: bool = False,
    ) -> None:
        self.started = time.monotonic()
        self._own_group = own_group
        self._stop_signal = stop_signal
        self._grace = grace
        self._stop_lock = threading.Lock()
        self._stopped = False
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if (pipes or merge_output) else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
            env=env,
            start_new_session=own_group,  # so ending it can kill the probe's own children too
        )
        self.pid = self.proc.pid
        # the one registry of live children: Ctrl-Z, SIGCONT, a graceful end and an
        # interrupt's stop_all reach its group
        interrupts.register(self.proc, self.stop)
        stream = self.proc.stdout if merge_output else self.proc.stderr
        self.output = TailReader(stream, keep=keep)

    def wait(self, timeout: float | None) -> bool:
        """True when the child ended within ``timeout``; never raises on the timeout."""
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        """End the child (and its group), reap it; safe to call twice, from any thread."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            if self._own_group:
                if _signal_group(self.pid, self._stop_signal) and self._grace:
                    # e.g. SIGTERM first: torchrun in the group ends its ranks
                    self._wait_group_gone()
                    _signal_group(self.pid, signal.SIGKILL)
                if self.proc.poll() is None:
                    self.proc.kill()  # no process groups (Windows)
            else:
                if self.proc.poll() is None:
                    self.proc.send_signal(self._stop_signal)
                if not self.wait(self._grace or None):
                    self.proc.kill()
            self.proc.wait()

    def finish(self) -> str:
        """Stop what is left of the child and return the end of its output."""
        self.stop()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and pipe is not self.output.stream:
                try:
                    pipe.close()
                except OSError:
                    pass
        return self.output.finish()

    def _wait_group_gone(self) -> None:
        deadline = time.monotonic() + self._grace
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader: a zombie would keep the group "alive"
            if not _signal_group(self.pid, 0):
                return
            time.sleep(0.1)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when there is none left (or no groups: Windows)."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError, AttributeError):
        return False


def read_result(path: Path, limit: int = MAX_RESULT_BYTES) -> dict[str, Any] | None:
    """A result file a child wrote (a probe worker, torchrun's rank 0), or None: missing,
    over ``limit`` bytes, or not a result (a JSON object with "ok")."""
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            return None
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "ok" in data else None


def outcome_from_result(
    target: str, result: dict[str, Any], seconds: float, stderr: str
) -> ProbeOutcome:
    """The outcome of a probe that wrote a complete result (the call returned or raised)."""
    timing = result.get("timing") if isinstance(result.get("timing"), dict) else {}
    common = {"seconds": seconds, "stderr_tail": stderr_tail(stderr), "stderr": stderr}
    if result.get("ok") and isinstance(result.get("data"), dict):
        return ProbeOutcome(target, True, data=result["data"], timing=timing, **common)
    return ProbeOutcome(
        target,
        False,
        failure="error",
        error=str(result.get("error") or "the probe raised"),
        user_error=bool(result.get("user_error")),
        timing=timing,
        **common,
    )


def died(target: str, code: int, seconds: float, stderr: str, who: str = "") -> ProbeOutcome:
    """The outcome of a probe whose process ended before it wrote a result."""
    tail = stderr_tail(stderr)
    if code < 0:
        error = f"{who}{'was ' if who else ''}killed by {signal_name(code)}"
        return ProbeOutcome(target, False, failure="signal", error=error, seconds=seconds,
                            stderr_tail=tail, stderr=stderr)  # fmt: skip
    error = f"{who}exited with code {code} before writing a result"
    return ProbeOutcome(target, False, failure="exit", error=error, seconds=seconds,
                        stderr_tail=tail, stderr=stderr)  # fmt: skip


def exit_note(code: int | None) -> str | None:
    """A complete result wins over a bad exit (a CUDA destructor can abort at interpreter
    exit after a device-side assert, pytorch/pytorch#149762); the exit is kept as a note."""
    if code is None or code == 0:
        return None
    return f"the probe process ended with {describe_exit(code)} after writing its result"


def run_probe(
    target: str,
    args: dict[str, Any] | None = None,
    timeout: float = 120.0,
    extra_path: list[str] | None = None,
    stop_signal: int = signal.SIGKILL,
    grace: float = 0.0,
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
        env = child_env(extra_path, scratch=tmp)
        child = Child(cmd, env, stop_signal=stop_signal, grace=grace)
        try:
            ended = child.wait(timeout)
        finally:
            # After a timeout, or when the wait is interrupted: nothing the probe started
            # may outlive it (on a GPU it would keep holding memory).
            stderr = child.finish()
        seconds = time.monotonic() - start
        if not ended:
            return ProbeOutcome(
                target,
                False,
                failure="timeout",
                error=f"timed out after {timeout:.0f} s",
                seconds=seconds,
                stderr_tail=stderr_tail(stderr),
                isolation="fresh",
            )
        result = read_result(out_path)
    if result is None:
        outcome = died(target, child.returncode, seconds, stderr)
    else:
        outcome = outcome_from_result(target, result, seconds, stderr)
        note = exit_note(child.returncode)
        if note:
            outcome.notes.append(note)
    outcome.isolation = "fresh"
    return outcome


class TailReader:
    """Drain a child's output pipe while it runs, keeping only the last ``keep`` bytes.

    A child that floods its output must neither block on a full pipe nor fill envcheck's memory.
    ``mark()`` and ``since(mark)`` give one call's part of a long-lived worker's output.
    """

    def __init__(self, stream: Any, keep: int = STDERR_KEPT) -> None:
        self.stream = stream
        self._keep = keep
        self._tail = b""
        self._total = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self.stream.fileno()
        while True:
            try:
                block = os.read(fd, 1 << 16)
            except OSError:
                return
            if not block:
                return
            self._tail = (self._tail + block)[-self._keep :]
            self._total += len(block)

    def mark(self) -> int:
        return self._total

    def since(self, mark: int) -> str:
        """What was read after ``mark`` (its end, at most ``keep`` bytes)."""
        tail, fresh = self._tail, self._total - mark
        return (tail[-fresh:] if 0 < fresh < len(tail) else tail if fresh else b"").decode(
            "utf-8", errors="replace"
        )

    def finish(self) -> str:
        # The group is dead, so the pipe's writers are gone; a grandchild that escaped the
        # group could hold it open, hence the bound on the wait.
        self._thread.join(timeout=5)
        self.stream.close()
        return self._tail.decode("utf-8", errors="replace")
