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


def split_cause_fix(message: str) -> tuple[str, str]:
    """Split "cause; fix" (the form of every EnvcheckError message) at its first top-level "; ".

    Semicolons inside parentheses belong to the cause (e.g. a list of failed mirrors).
    """
    depth = 0
    for i, ch in enumerate(message):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0 and message[i + 1 : i + 2] == " ":
            return message[:i], message[i + 2 :]
    return message, "see the message"
