"""The probe host: one ``call(name, spec, args) -> ProbeOutcome`` for every probe, wherever it
runs. A ProbeSpec's isolation says where:

- shared: a warm worker per framework (imported once, one CUDA context) runs that
  framework's probes in turn. A worker that dies or hangs during a call is killed; that call
  fails ("signal"/"exit": it died, "timeout": it hung) and the framework's remaining probes
  run in a fresh worker, with a note saying so.
- fresh: a process of its own (the device-side assert poisons the CUDA context).
- launcher: a process of its own that starts torchrun (the distributed check).
- inprocess: called directly (the environment: file reads, no framework).

LiveHost runs probes, ReplayHost looks recorded outcomes up. Every child goes through the
one supervisor in runner.py (spawn, drain, deadline, kill group, classify exit).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import select
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .runner import (
    NOT_RECORDED,
    STDERR_KEPT,
    Child,
    ProbeOutcome,
    child_env,
    describe_exit,
    died,
    exit_note,
    outcome_from_result,
    read_result,
    run_probe,
    stderr_tail,
)

if TYPE_CHECKING:
    from .checks.registry import ProbeSpec

# A warm worker's stderr is read per call; it keeps more than one probe's share.
WORKER_STDERR_KEPT = 64 * 1024
# How long a worker may take to end after its input is closed (its frameworks tear down).
WORKER_EXIT_GRACE = 10.0
# The worker answers "ready" and "done"; a longer line is not the worker's answer.
MAX_REPLY_BYTES = 4096
# How long a launcher's group gets after SIGTERM (torchrun ending its ranks) before SIGKILL.
LAUNCHER_GRACE = 15.0


class WorkerGone(Exception):
    """The worker ended (or stopped answering) before it finished the call."""


class WarmWorker:
    """One long-lived ``python -m envcheck.worker --serve NAME`` process."""

    def __init__(
        self, name: str, extra_path: list[str] | None = None, scratch: str | None = None
    ) -> None:
        self.name = name
        cmd = [sys.executable, "-m", "envcheck.worker", "--serve", name]
        env = child_env(extra_path, scratch=scratch)
        self.child = Child(cmd, env, keep=WORKER_STDERR_KEPT, pipes=True)
        self._buffer = b""
        self.ready = False

    @property
    def alive(self) -> bool:
        return self.child.proc.poll() is None

    def _line(self, deadline: float) -> str:
        """The next line on the reply channel; WorkerGone at end of file or past deadline."""
        fd = self.child.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerGone("timeout")
            readable, _, _ = select.select([fd], [], [], min(left, 1.0))
            if readable:
                block = os.read(fd, 4096)
                if not block or len(self._buffer) > MAX_REPLY_BYTES:  # ended, or not ours
                    raise WorkerGone("eof")
                self._buffer += block
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace")

    def call(self, name: str, target: str, args: dict, out: Path, deadline: float) -> None:
        """Run one probe; its result lands in ``out``. Raises WorkerGone if the worker dies
        or the deadline passes first."""
        if not self.ready:
            if self._line(deadline) != "ready":
                raise WorkerGone("eof")
            self.ready = True
        request = json.dumps({"name": name, "target": target, "args": args, "out": str(out)})
        request += "\n"
        try:
            self.child.proc.stdin.write(request.encode())
            self.child.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone("eof") from None
        if self._line(deadline) != "done":
            raise WorkerGone("eof")

    def close(self) -> int | None:
        """Let the worker end on its own (its input closed), else end its group."""
        try:
            self.child.proc.stdin.close()
        except OSError:
            pass
        self.child.wait(WORKER_EXIT_GRACE)
        code = self.child.returncode
        self.child.finish()
        return code


class LiveHost:
    """Runs probes for real; ``shared=False`` runs shared probes in fresh processes too."""

    def __init__(self, shared: bool = True, extra_path: list[str] | None = None) -> None:
        self.shared = shared
        self.extra_path = extra_path or []
        self.notes: list[str] = []  # for the report: replaced workers, odd exits
        self._workers: dict[str, WarmWorker] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._replaced: dict[str, str] = {}  # worker name -> why its predecessor went
        self._guard = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory | None = None  # result files of shared calls
        self._count = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    # -- dispatch ------------------------------------------------------------------------
    def call(self, name: str, spec: ProbeSpec, args: dict, timeout: float) -> ProbeOutcome:
        isolation = spec.isolation
        if isolation == "inprocess":
            outcome = self._in_process(spec.target, args)
        elif isolation == "shared" and self.shared:
            outcome = self._shared(name, spec.framework or "shared", spec.target, args, timeout)
        else:  # a process of its own; a launcher gets SIGTERM first (torchrun ends its ranks)
            stop = (signal.SIGTERM, LAUNCHER_GRACE) if isolation == "launcher" else ()
            outcome = run_probe(spec.target, args, timeout, self.extra_path, *stop)
            outcome.timing["start"] = max(0.0, outcome.seconds - sum(outcome.timing.values()))
        outcome.isolation = isolation if isolation != "shared" or self.shared else "fresh"
        return outcome

    def submit(self, name: str, spec: ProbeSpec, args: dict, timeout: float):
        """Start a call in the background (overlap); the Future gives its ProbeOutcome."""
        with self._guard:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        return self._pool.submit(self.call, name, spec, args, timeout)

    def _in_process(self, target: str, args: dict) -> ProbeOutcome:
        start = time.monotonic()
        module_name, func_name = target.split(":")
        try:
            data = getattr(importlib.import_module(module_name), func_name)(args)
            outcome = ProbeOutcome(target, True, data=data)
        except Exception as exc:  # a fact that cannot be collected is data, not a crash
            outcome = ProbeOutcome(target, False, failure="error",
                                   error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        outcome.seconds = time.monotonic() - start
        outcome.timing = {"work": outcome.seconds}
        return outcome

    # -- warm workers --------------------------------------------------------------------
    def _shared(
        self, name: str, worker_name: str, target: str, args: dict, timeout: float
    ) -> ProbeOutcome:
        with self._guard:
            lock = self._locks.setdefault(worker_name, threading.Lock())
        with lock:  # one call at a time per worker
            return self._on_worker(name, worker_name, target, args, timeout)

    def _on_worker(
        self, name: str, worker_name: str, target: str, args: dict, timeout: float
    ) -> ProbeOutcome:
        start = time.monotonic()
        deadline = start + timeout
        notes = []
        with self._guard:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="envcheck-host-")
        worker = self._workers.get(worker_name)
        if worker is not None and not worker.alive:  # it ended between calls
            code = worker.close()
            del self._workers[worker_name]
            self._replace(worker_name, f"the shared one had ended with {describe_exit(code)}",
                          name)  # fmt: skip
            worker = None
        if worker is None:
            # its scratch (compile caches) lives in the host's temp folder, which goes even
            # when the worker is killed
            worker = WarmWorker(worker_name, self.extra_path, scratch=self._tmp.name)
            self._workers[worker_name] = worker
            if worker_name in self._replaced:
                notes.append(f"ran in a fresh {worker_name} worker: {self._replaced[worker_name]}")
        started_here = not worker.ready
        with self._guard:
            self._count += 1
            out = Path(self._tmp.name, f"{self._count}-{name}.json")
        mark = worker.child.output.mark()
        try:
            worker.call(name, target, args, out, deadline)
        except WorkerGone as gone:
            return self._lost(name, worker_name, worker, target, out, start, mark, str(gone),
                              timeout, notes)  # fmt: skip
        return self._finish(target, out, start, worker, mark, notes, started_here)

    def _finish(self, target, out, start, worker, mark, notes, started_here) -> ProbeOutcome:
        seconds = time.monotonic() - start
        stderr = worker.child.output.since(mark)[-STDERR_KEPT:]
        result = read_result(out)
        if result is None:  # answered, but no readable result: treat as a bad reply
            outcome = ProbeOutcome(target, False, failure="exit", seconds=seconds,
                                   error="the worker answered without a readable result",
                                   stderr_tail=stderr_tail(stderr), stderr=stderr)  # fmt: skip
        else:
            outcome = outcome_from_result(target, result, seconds, stderr)
        if started_here:
            outcome.timing["start"] = max(0.0, seconds - sum(outcome.timing.values()))
        outcome.notes.extend(notes)
        return outcome

    def _lost(self, name, worker_name, worker, target, out, start, mark, why, timeout, notes):
        """The worker died or hung during this call: end it, and let a fresh one take over."""
        hung = why == "timeout"
        code = None
        if not hung:
            worker.child.wait(WORKER_EXIT_GRACE)  # it is ending: learn how
            code = worker.child.returncode
        stderr = worker.child.output.since(mark)[-STDERR_KEPT:]
        worker.child.finish()
        del self._workers[worker_name]
        seconds = time.monotonic() - start
        result = read_result(out)
        if result is not None:  # it finished this call, then died: the complete result wins
            outcome = outcome_from_result(target, result, seconds, stderr)
            note = exit_note(code if code is not None else -9)
            outcome.notes.append(note or "the worker ended after writing its result")
        elif hung:
            outcome = ProbeOutcome(target, False, failure="timeout", seconds=seconds,
                                   error=f"timed out after {timeout:.0f} s",
                                   stderr_tail=stderr_tail(stderr))  # fmt: skip
        else:
            outcome = died(target, code if code is not None else -9, seconds, stderr,
                           who=f"the shared {worker_name} worker ")  # fmt: skip
        if hung:
            how = f"hung (killed after {timeout:.0f} s)"
        else:
            how = f"ended with {describe_exit(code if code is not None else -9)}"
        self._replace(worker_name, f"the shared one {how}", name)
        outcome.notes.extend(notes)
        return outcome

    def _replace(self, worker_name: str, why: str, during: str) -> None:
        """Remember why the framework's next call starts a fresh worker; the report says so."""
        self._replaced[worker_name] = f"{why} during {during}"
        self.notes.append(
            f"{why.replace('the shared one', f'the shared {worker_name} worker')} during "
            f"{during}; the remaining {worker_name} probes ran in a fresh worker"
        )

    # -- end -------------------------------------------------------------------------------
    def close(self) -> None:
        """The run is over: let the calls still running finish, then end every worker."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for name, worker in list(self._workers.items()):
            code = worker.close()
            if code:  # its results are in; how it ended is worth a note
                self.notes.append(f"the shared {name} worker ended with {describe_exit(code)}")
        self._workers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def abort(self) -> None:
        """Interrupted: stop every child now, wait for the calls to unwind, clean up."""
        from .interrupts import stop_all

        stop_all()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for worker in self._workers.values():
            worker.child.finish()
        self._workers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()


class ReplayHost:
    """Recorded outcomes (``--replay``): nothing runs."""

    def __init__(self, recorded: dict[str, ProbeOutcome]) -> None:
        self.recorded = recorded
        self.notes: list[str] = []

    def call(self, name: str, spec: Any, args: dict, timeout: float) -> ProbeOutcome:
        if name in self.recorded:
            return self.recorded[name]
        return ProbeOutcome(name, False, failure="error", error=NOT_RECORDED)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
