"""Ctrl-C, kill, a closed terminal and Ctrl-Z reach everything a command started.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM and SIGHUP kill the interpreter on
the spot: no ``finally`` runs, so a probe's process group and temp folder would outlive it.
While a command runs, all three raise :class:`Interrupted` instead; the code that started a
process or made a temp file cleans up on the way out, and the CLI exits with 128 + signal.

Probes and torchrun run in process groups of their own (so that a timeout can kill all of a
probe), which the terminal's signals do not reach. Whoever starts one registers it here
(:func:`register`): then

- Ctrl-Z (SIGTSTP) stops those groups, and the groups of their descendants in other sessions
  (torchrun's ranks), before envcheck stops itself; SIGCONT (``fg``/``bg``) resumes them;
- Ctrl-C, SIGTERM and SIGHUP first ask them to end (SIGTERM) and give them a moment to clean
  up (torchrun's temp folders), before the starter's own cleanup kills what is left.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

# SIGHUP does not exist on Windows.
SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
JOB_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTSTP", "SIGCONT") if hasattr(signal, n))
GRACE_S = 10.0  # how long registered children get to end after a SIGTERM of ours

# The one registry of the children envcheck started (subprocess.Popen objects, each leading a
# process group of its own) and how to stop each: signals are forwarded to them (Ctrl-Z,
# SIGCONT, a graceful SIGTERM) and an interrupt or a closing host ends them all (stop_all).
_live: list[tuple[Any, Callable[[], None] | None]] = []
# re-entrant: the signal handlers read the registry (live()) and may run on the main thread
# while it holds the lock in register()
_lock = threading.RLock()


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by a signal; ``exit_code`` is the shell's 128 + number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


# ---------------------------------------------------------------------------- the registry


def register(proc: Any, stop: Callable[[], None] | None = None) -> None:
    """Track a child (a subprocess.Popen) that leads a process group of its own, and the call
    that ends it (``stop``: kill its group and reap it).

    Nothing needs unregistering: a child that has been reaped drops out by itself.
    """
    with _lock:
        _live[:] = [(p, s) for p, s in _live if p.returncode is None]
        _live.append((proc, stop))


def live() -> list[Any]:
    with _lock:
        return [p for p, _ in _live if p.returncode is None]


def stop_all() -> None:
    """End every registered child that is still alive (an interrupt, or a host closing)."""
    with _lock:
        stops = [s for p, s in _live if s is not None and p.returncode is None]
    for stop in stops:
        stop()


def _descendant_groups(roots: list[int]) -> set[int]:
    """Process groups of the roots and of all their descendants (Linux: /proc; else roots)."""
    groups = set(roots)
    try:
        entries = os.listdir("/proc")
    except OSError:
        return groups
    parent_of: dict[int, tuple[int, int]] = {}
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            parent_of[int(name)] = (int(fields[1]), int(fields[2]))  # ppid, pgrp
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    wanted, changed = set(roots), True
    while changed:
        changed = False
        for pid, (ppid, _) in parent_of.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    groups |= {parent_of[p][1] for p in wanted if p in parent_of}
    return groups


def forward(sig: int, descendants: bool = True) -> None:
    """Send ``sig`` to every registered group (and its descendants' groups), never our own."""
    roots = [p.pid for p in live()]
    if not roots:
        return
    groups = _descendant_groups(roots) if descendants else set(roots)
    own = os.getpgrp()
    for group in groups - {own}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def _exited(proc: Any) -> bool:
    """True once the child has exited (without reaping it: its Popen does that)."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    except (OSError, AttributeError):
        return False
    return info is not None


def end_registered(grace: float = GRACE_S) -> None:
    """Ask every registered group to end (SIGTERM) and wait up to ``grace`` seconds."""
    procs = live()
    if not procs:
        return
    forward(signal.SIGTERM, descendants=False)  # torchrun ends its own ranks
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(_exited(p) for p in procs):
        time.sleep(0.05)


# ---------------------------------------------------------------------------- handlers


def _raise(signum: int, _frame: object) -> None:
    # Cleanup must finish even if the user presses Ctrl-C again or `kill` is repeated.
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    end_registered()
    raise Interrupted(signum)


def _stop(_signum: int, _frame: object) -> None:
    """Ctrl-Z: stop the registered groups (SIGSTOP: they are orphaned groups, which the
    kernel does not stop for SIGTSTP), then this process; resume them when continued."""
    forward(signal.SIGSTOP)
    os.kill(os.getpid(), signal.SIGSTOP)
    forward(signal.SIGCONT)  # continued (fg/bg): so are they


def _continue(_signum: int, _frame: object) -> None:
    forward(signal.SIGCONT)


def _unraisable(hook: Any) -> Any:
    """A sys.unraisablehook that does not swallow an interrupt.

    A signal that lands while Python runs a callback whose exceptions cannot propagate (a
    weakref or import-lock callback) would print "Exception ignored ... Interrupted" and be
    lost. Instead it is raised again at once, in the main thread's normal flow.
    """

    def on_unraisable(info: Any) -> None:
        exc = getattr(info, "exc_value", None)
        if isinstance(exc, Interrupted):
            signal.signal(exc.signum, _raise)
            # from another thread, so that it lands after this hook, in the normal flow
            args = (exc.signum,) if sys.version_info >= (3, 10) else ()  # 3.9: as SIGINT
            threading.Timer(0.01, _thread.interrupt_main, args=args).start()
            return
        hook(info)

    return on_unraisable


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Interrupted` while the block runs, and
    pass Ctrl-Z / SIGCONT on to the registered child groups."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; an embedding program keeps its own
        return
    previous = {sig: signal.getsignal(sig) for sig in (*SIGNALS, *JOB_SIGNALS)}
    for sig in SIGNALS:
        if previous[sig] is signal.SIG_IGN:
            continue  # e.g. SIGHUP under nohup: the user asked for it to be ignored
        signal.signal(sig, _raise)
    for sig, handler in zip(JOB_SIGNALS, (_stop, _continue)):
        if previous[sig] is not signal.SIG_IGN:
            signal.signal(sig, handler)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(previous_hook)
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
