"""Writing files so that a reader never sees half of one, and reading them with a bound."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import EnvcheckError


def write_atomic(path: str | Path, text: str) -> None:
    """Write via a temp file in ``path``'s folder and rename, so a reader never sees half a file.

    The temp file has a unique name and is created exclusively (never through a link planted
    there); a failed write removes it, so nothing is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short fixed prefix: the target's own name may already use all 255 characters.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".envcheck-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; a report is read by others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)  # keep the mode of the file replaced
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def check_output(path: str | Path | None, option: str) -> None:
    """Refuse an output path that cannot be written, before any work starts (exit 2).

    Probes the folder by creating (and removing) a temp file in it, which also catches
    read-only mounts and pseudo file systems such as /proc, where permission bits lie.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise EnvcheckError(
            f"{option} {path} is a folder; name a file in it, e.g. {path / _example(option)}",
            exit_code=2,
        )
    if path.exists() and not path.is_file():
        raise EnvcheckError(
            f"{option} {path} is not a regular file (a device or pipe); name a file", exit_code=2
        )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # write_atomic creates the missing folders
    problem = None
    if not folder.is_dir():
        problem = f"{folder} is not a folder"
    else:
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".envcheck-", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            problem = f"{folder} does not take new files ({exc.strerror or exc})"
    if problem:
        raise EnvcheckError(
            f"cannot write {option} {path}: {problem}; choose a path in a writable folder",
            exit_code=2,
        )


def _example(option: str) -> str:
    return {"--junit": "report.xml", "--save-facts": "facts.json"}.get(option, "report.json")


def write_output(path: str | Path, text: str, option: str) -> None:
    """write_atomic for a file the user named; a failure is one line (exit 1), nothing left."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise EnvcheckError(
            f"cannot write {option} {path}: {exc.strerror or exc}; nothing was written: free "
            "space or choose another path"
        ) from None


def read_bounded(path: str | Path, limit: int, what: str, fix: str) -> bytes:
    """Read a regular file of at most ``limit`` bytes; refuse others with one line.

    ``what`` names the file's role ("lock file"), ``fix`` ends each message.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise EnvcheckError(f"{what} {path} is not a regular file; {fix}")
        if info.st_size > limit:
            raise EnvcheckError(
                f"{what} {path} is {info.st_size} bytes, more than the {limit} a {what} "
                f"can sensibly have; {fix}"
            )
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise EnvcheckError(f"{what} {path} is more than {limit} bytes; {fix}")
    return data


def decode_utf8(data: bytes, path: str | Path, what: str, fix: str) -> str:
    """UTF-8 text, or one line naming where the file stops being text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvcheckError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}: a binary or damaged file); {fix}"
        ) from None
