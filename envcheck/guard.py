"""The one I/O guard every command goes through: outputs, inputs, the step summary, escaping.

Outputs (``check_output`` before any work, ``write_output`` after it):
- a regular file (new or existing) is written atomically: a temp file beside it, then a rename;
- ``/dev/stdout``, ``/dev/stderr`` (and ``/dev/fd/1``, ``/dev/fd/2``) are written through to
  the stream, since that is what naming them means; ``/dev/null`` is accepted as "discard"
  and left as it is (it is never replaced by a regular file);
- any other device, a pipe (FIFO), a socket or a symbolic link is refused with exit 2;
- a write that fails later (full disk, /proc, a read-only mount) is one line, exit 1.

Inputs (``read_input`` and the typed loaders): the path's type is checked before it is
opened (a FIFO or /dev/zero never blocks or fills memory), every read is bounded, JSON/TOML/
YAML nesting is bounded, NaN/Infinity and integers beyond 64 bits are refused naming their
field, and YAML anchors/aliases (the "billion laughs" bomb) are refused before expansion.

Standard library only at import time: doctor runs with a bare Python.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import EnvcheckError

MAX_DEPTH = 64  # no envcheck file nests deeper than ~8; 64 leaves room and stops bombs
MAX_INT = 2**63  # a bigger integer in a facts or report file is damage or an attack
NAME_MAX = 255  # bytes in one path component on every common file system

# The process's own streams: naming one means "print it there".
STREAMS = {"/dev/stdout": 1, "/dev/fd/1": 1, "/proc/self/fd/1": 1}
STREAMS |= {"/dev/stderr": 2, "/dev/fd/2": 2, "/proc/self/fd/2": 2}
DISCARD = "/dev/null"


# ---------------------------------------------------------------------------- outputs


def _kind(path: Path) -> str:
    """stream | discard | file (a regular file or nothing yet) | the reason it is refused."""
    if str(path) in STREAMS:
        return "stream"
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "file"  # not there yet: check_output then names the folder that is wrong
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        with contextlib.suppress(OSError):
            if os.path.realpath(path) == DISCARD:
                return "discard"
        return f"is a symbolic link (to {os.readlink(path)}); name the file itself"
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    if stat.S_ISREG(info.st_mode):
        return "file"
    if stat.S_ISCHR(info.st_mode):
        with contextlib.suppress(OSError):
            if os.stat(DISCARD).st_rdev == info.st_rdev:
                return "discard"
        return "is a device, not a file; name a regular file"
    if stat.S_ISFIFO(info.st_mode):
        return "is a pipe (FIFO), not a file; name a regular file"
    return "is not a regular file (a socket or device); name a regular file"


def _example(option: str) -> str:
    return {"--junit": "report.xml", "--save-facts": "facts.json"}.get(option, "report.json")


def check_output(path: str | Path | None, option: str) -> None:
    """Refuse an output path that cannot be written, before any work starts (exit 2).

    Probes the folder by creating (and removing) a temp file in it, which also catches
    read-only mounts and pseudo file systems such as /proc, where permission bits lie.
    """
    if path is None:
        return
    path = Path(path)
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise EnvcheckError(
            f"{option}: the file name is {len(os.fsencode(path.name))} bytes, more than the "
            f"{NAME_MAX} a file system allows; choose a shorter name",
            exit_code=2,
        )
    kind = _kind(path)
    if kind in ("stream", "discard"):
        return
    if kind == "folder":
        raise EnvcheckError(
            f"{option} {path} is a folder; name a file in it, e.g. {path / _example(option)}",
            exit_code=2,
        )
    if kind != "file":
        raise EnvcheckError(f"{option} {path} {kind}", exit_code=2)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # write_output creates the missing folders
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
        # "replace": a lone surrogate from a JSON input must not fail the write
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
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


def _write_stream(fd: int, text: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # what was printed before comes before the report
    data = text.encode("utf-8", "replace")  # UTF-8 whatever the terminal's encoding
    while data:
        data = data[os.write(fd, data) :]


def write_output(path: str | Path, text: str, option: str) -> None:
    """Write a file the user named (see the module doc); a failure is one line (exit 1)."""
    path = Path(path)
    kind = _kind(path)
    try:
        if kind == "discard":
            return
        if kind == "stream":
            _write_stream(STREAMS[str(path)], text)
            return
        if kind not in ("file", "folder"):  # replaced by something else since the check
            raise EnvcheckError(f"cannot write {option} {path}: it {kind}")
        write_atomic(path, text)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EPIPE:
            reason = "the reader closed it"
        raise EnvcheckError(
            f"cannot write {option} {path}: {reason}; nothing was written: free space or "
            "choose another path"
        ) from None


def append_step_summary(text: str) -> str | None:
    """Append to $GITHUB_STEP_SUMMARY when it is set; the one-line problem, or None.

    The variable is untrusted like any input: a link, pipe or device is not written to, and
    a failure is reported (by the caller, as a warning) instead of ending the command.
    """
    name = os.environ.get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    kind = _kind(path)
    if kind == "discard":
        return None
    if kind != "file":
        return f"GITHUB_STEP_SUMMARY {path} {'is a folder' if kind == 'folder' else kind}"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a FIFO planted meanwhile must not block
    try:
        fd = os.open(path, flags, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return f"GITHUB_STEP_SUMMARY {path} is not a regular file"
            data = text.encode("utf-8", "replace")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot append to GITHUB_STEP_SUMMARY {path}: {exc.strerror or exc}"
    return None


def warn_step_summary(text: str) -> None:
    """append_step_summary, with a failure printed as one warning line (the run goes on)."""
    problem = append_step_summary(text)
    if problem:
        print(f"envcheck: warning: {plain(problem)}; the step summary was not written",
              file=sys.stderr)  # fmt: skip


# ---------------------------------------------------------------------------- inputs


def read_input(path: str | Path, limit: int, what: str, fix: str, exit_code: int = 1) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is one line.

    The type is checked before the file is opened, and again on the open descriptor (a
    FIFO swapped in between is opened without blocking and refused).
    """
    path = Path(path)

    def refuse(why: str) -> EnvcheckError:
        return EnvcheckError(f"{what} {path} {why}; {fix}", exit_code=exit_code)

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise refuse("does not exist") from None
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise refuse("is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise refuse("is not a regular file (a device, pipe or socket)")
    if info.st_size > limit:
        raise refuse(f"is {info.st_size} bytes, more than the {limit} a {what} can sensibly have")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse("is not a regular file (a device, pipe or socket)")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:  # grew while being read
        raise refuse(f"is more than {limit} bytes")
    return data


def decode_utf8(data: bytes, path: str | Path, what: str, fix: str, exit_code: int = 1) -> str:
    """UTF-8 text, or one line naming where the file stops being text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvcheckError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}: a binary or damaged file); {fix}",
            exit_code=exit_code,
        ) from None


def finite(value: Any) -> Any:
    """A copy with NaN/Infinity as None: what envcheck writes, its own readers accept."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class BoundError(ValueError):
    """Parsed, but beyond the guard's bounds (nesting, NaN/Infinity, huge integers)."""


def check_plain(value: Any, where: str = "") -> None:
    """Refuse nesting deeper than MAX_DEPTH, NaN/Infinity and over-long integers (ValueError
    naming the field). Iterative, so a deep file cannot exhaust the stack here."""
    stack = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BoundError(f"it nests deeper than {MAX_DEPTH} levels")
        name = at or "the file"
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if abs(item) >= MAX_INT:
                raise BoundError(f"{name} is an integer of {len(str(abs(item)))} digits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise BoundError(f"{name} is {item} (NaN/Infinity is not a number)")
        elif isinstance(item, dict):
            for k, v in item.items():
                stack.append((v, f"{at}.{k}" if at else str(k), depth + 1))
        elif isinstance(item, (list, tuple)):
            for i, v in enumerate(item):
                stack.append((v, f"{at}[{i}]", depth + 1))


def parse_text(text: str, fmt: str) -> Any:
    """Parse JSON, TOML or YAML text with the guard's bounds; ValueError says why not.

    The parsers recurse per level: thousands of levels end in RecursionError (caught here,
    before any stack runs out), and check_plain then holds every file to MAX_DEPTH.
    """
    try:
        if fmt == "json":
            data = json.loads(text)
        elif fmt == "toml":
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif fmt == "yaml":
            data = load_yaml_text(text)
        else:
            raise ValueError(f"unknown format {fmt}")
    except RecursionError:
        raise BoundError(f"it nests deeper than {MAX_DEPTH} levels") from None
    check_plain(data)
    return data


def load_file(
    path: str | Path, fmt: str, limit: int, what: str, fix: str, exit_code: int = 1
) -> Any:
    """read_input + decode_utf8 + parse_text: one bounded, typed read; one line on error."""
    text = decode_utf8(read_input(path, limit, what, fix, exit_code), path, what, fix, exit_code)
    try:
        return parse_text(text, fmt)
    except BoundError as exc:
        raise EnvcheckError(
            f"{what} {path}: {one_line(exc)[:300]}; {fix}", exit_code=exit_code
        ) from None
    except ValueError as exc:
        raise EnvcheckError(
            f"{what} {path} is not {fmt.upper()} ({one_line(exc)[:300]}); {fix}",
            exit_code=exit_code,
        ) from None


# Anchors (&a) and aliases (*a) where a YAML node starts: after "- ", ": ", "[", "," or at
# the start of a line. A version spec's "*" (``pytorch * cuda*``) sits inside a scalar.
_YAML_REF = re.compile(r"(?:^|[\[{,]|: |- )[ \t]*[&*][^\s,\[\]{}]")


def refuse_yaml_aliases(text: str) -> None:
    """ValueError when YAML text uses anchors or aliases (which a parser would expand).

    A regular expression finds candidates fast; PyYAML's scanner, when installed, confirms
    them so that a quoted "&" or "*" is not mistaken for one.
    """
    if not _YAML_REF.search(text, 0) and not re.search(r"(?m)^[&*]", text):
        return
    try:
        import yaml
    except ImportError:
        raise ValueError("uses YAML anchors or aliases (&name / *name)") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for token in yaml.scan(text, Loader=loader):
            if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
                raise ValueError(
                    "uses YAML anchors or aliases (&name / *name), which envcheck refuses: "
                    "a few lines of them expand to gigabytes"
                )
    except yaml.YAMLError as exc:
        raise ValueError(f"is not YAML ({str(exc).splitlines()[0]})") from None


def load_yaml_text(text: str) -> Any:
    """Safe YAML without anchors or aliases (refused before any expansion)."""
    refuse_yaml_aliases(text)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


# ---------------------------------------------------------------------------- printing

# ESC sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), DCS/SOS/PM/APC (ESC P/X/^/_
# ... ESC \) and two-byte escapes; then the C0 controls but tab and newline, DEL and C1.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b.?",
    re.S,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")  # JSON's "\ud800": no encoder writes it


def plain(text: Any) -> str:
    """Text from outside with terminal control sequences and control characters removed."""
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", _ESCAPES.sub("", str(text))))


def plain_copy(value: Any) -> Any:
    """A copy of plain data or dataclasses (a Report) with every string made plain(): one
    call before rendering, so that no renderer has to remember it."""
    import dataclasses
    import enum

    if isinstance(value, enum.Enum):
        return value  # Status is a str enum: kept as itself
    if isinstance(value, str):
        return plain(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: plain_copy(getattr(value, f.name)) for f in dataclasses.fields(value)
                   if f.init}  # fmt: skip
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {plain_copy(k): plain_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_copy(v) for v in value)
    return value


def one_line(text: Any) -> str:
    """plain(), on one line (for error messages and table cells)."""
    return " ".join(plain(text).split("\n"))


def escape(text: Any) -> str:
    """plain() and escaped for rich markup: safe inside a markup string."""
    from rich.markup import escape as rich_escape

    return rich_escape(plain(text))


def safe_text(text: Any, style: str = "") -> Any:
    """A rich Text of plain(text): no markup is parsed in it, no control sequence survives."""
    from rich.text import Text

    return Text(plain(text), style=style)


def printing_survives(render: Callable[[], None]) -> bool:
    """Run a render to stdout; a closed pipe (``| head``) ends it quietly. False if it did.

    Later writes to the closed stdout (and the interpreter's flush at exit) go to /dev/null.
    """
    try:
        render()
        sys.stdout.flush()
        return True
    except SystemExit:
        # rich's own answer to a closed pipe: stdout already points to /dev/null, then
        # SystemExit(1), which would replace the command's verdict with a plain 1
        return False
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return False
