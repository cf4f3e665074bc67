"""Errors that end a command with one clear line instead of a traceback."""

from __future__ import annotations


class EnvcheckError(Exception):
    """A problem the user can fix: the message names the cause and the fix.

    The CLI prints ``envcheck: error: <message>`` and exits with ``exit_code``
    (1: a check or input is bad; 2: the command line itself is wrong).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
