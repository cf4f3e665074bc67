"""The live status line of `envcheck verify`: which check runs, and for how long."""

from __future__ import annotations

import threading
import time
from typing import Any


class Ticker:
    """Updates a rich Status every second with the running check and its seconds so far."""

    def __init__(self, status: Any, every: float = 1.0) -> None:
        self._status = status
        self._every = every
        self._label = "starting"
        self._since = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def start(self, label: str) -> None:
        self._label, self._since = label, time.monotonic()
        self._show()

    def _show(self) -> None:
        self._status.update(f"envcheck: {self._label} ({time.monotonic() - self._since:.0f} s)")

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._show()
