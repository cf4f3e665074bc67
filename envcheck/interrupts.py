"""Ctrl-C, kill and a closed terminal end a command cleanly.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM and SIGHUP kill the interpreter on
the spot: no ``finally`` runs, so a probe's process group and temp folder would outlive it.
While a command runs, all three raise :class:`Interrupted` instead; the code that started a
process or made a temp file cleans up on the way out, and the CLI exits with 128 + signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

# SIGHUP does not exist on Windows.
SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by a signal; ``exit_code`` is the shell's 128 + number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _raise(signum: int, _frame: object) -> None:
    # Cleanup must finish even if the user presses Ctrl-C again or `kill` is repeated.
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Interrupted` while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; an embedding program keeps its own
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        if previous[sig] is signal.SIG_IGN:
            continue  # e.g. SIGHUP under nohup: the user asked for it to be ignored
        signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
