"""Find MNIST on disk, or download it with checksum checks, and load it as numpy arrays.

Search order: a directory the user names (argument or ENVCHECK_DATA_DIR), the user cache
directory, then a download from the mirrors into that cache.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from envcheck.errors import EnvcheckError
from envcheck.guard import one_line, safe_text
from envcheck.mnist.idx import read_idx

ENV_DATA_DIR = "ENVCHECK_DATA_DIR"
ENV_MIRRORS = "ENVCHECK_MNIST_MIRRORS"

# Base URLs that serve the four original gz files under their original names.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# name: (SHA-256, size in bytes, array shape) of the canonical files.
FILES = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9912422,
        (60000, 28, 28),
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28881,
        (60000,),
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1648877,
        (10000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
        (10000,),
    ),
}

# The same files unpacked (the layouts of Kaggle and torchvision): name: (SHA-256, size).
UNPACKED = {
    "train-images-idx3-ubyte.gz": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47040016,
    ),
    "train-labels-idx1-ubyte.gz": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60008,
    ),
    "t10k-images-idx3-ubyte.gz": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7840016,
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10008,
    ),
}

# Per connect and per read: an unreachable mirror costs this long before the next is tried.
TIMEOUT_S = 20
# Per file and mirror: a mirror that trickles is given up after this base plus the file's
# size at MIN_RATE, so a fetch ends in bounded time whatever the mirrors do.
DEADLINE_BASE_S = 30.0
MIN_RATE = 50_000  # bytes per second
# A .part file whose process is gone, or this old, is left over from a killed fetch.
STALE_PART_S = 3600
NO_ROOM = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
CHUNK = 1 << 16
USER_AGENT = "envcheck (MNIST fetch; python urllib)"


def cache_dir() -> Path:
    """Where downloads go and are looked for: <user cache dir>/envcheck/mnist."""
    import platformdirs  # light, but only needed here

    return Path(platformdirs.user_cache_dir("envcheck")) / "mnist"


def resolve_mirrors(mirrors: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The mirrors to try: the argument, else ENVCHECK_MNIST_MIRRORS, else the defaults."""
    if not mirrors:
        env = os.environ.get(ENV_MIRRORS, "")
        mirrors = [m for m in (part.strip() for part in env.split(",")) if m]
    return [m.rstrip("/") + "/" for m in (mirrors or DEFAULT_MIRRORS)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK * 16), b""):
            digest.update(block)
    return digest.hexdigest()


def ways_out(where: Path | None = None) -> str:
    """The two fixes for a machine without MNIST, phrased once for every message."""
    target = where or cache_dir()
    return (
        "either pass --data-dir DIR (or set ENVCHECK_DATA_DIR) to a folder holding the four "
        "MNIST .gz files, or run `pixi run --locked fetch-mnist` (or `envcheck fetch-mnist`) on a "
        f"connected machine and copy the four files it downloads into {target} on this one"
    )


# ---------------------------------------------------------------- locating files


def _candidates(directory: Path, name: str) -> list[Path]:
    # Accept the layouts people already have: the original .gz, unpacked files,
    # Kaggle's dotted names, and torchvision's MNIST/raw folder.
    stem = name[: -len(".gz")]
    names = [name, stem, stem.replace("-idx", ".idx")]
    return [d / n for d in (directory, directory / "MNIST" / "raw") for n in names]


def find_in_dir(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Map each MNIST file name to the path found in ``directory``; also return the missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in FILES:
        hit = next((p for p in _candidates(directory, name) if p.is_file()), None)
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit
    return found, missing


def _valid_cache(directory: Path) -> dict[str, Path] | None:
    """The cached files if all four are there with the right checksum, else None."""
    paths = {name: directory / name for name in FILES}
    for name, path in paths.items():
        if not _is_original(path, FILES[name][0], FILES[name][1]):
            return None
    return paths


def _is_original(path: Path, sha: str, size: int) -> bool:
    # The size first: a wrong (or 40 GB sparse) file is refused without reading it.
    try:
        return path.stat().st_size == size and sha256_file(path) == sha
    except OSError:
        return False


def check_original(name: str, path: Path) -> None:
    """Refuse a file that is not the original MNIST file ``name`` (packed or unpacked).

    MNIST is one fixed data set: anything else (re-labelled, re-packed, damaged) would
    make a training result that says nothing about the device, so it is never read.
    """
    known = {FILES[name][:2], UNPACKED[name]}
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise EnvcheckError(f"cannot read {path}: {exc.strerror or exc}; check the path") from None
    sizes = sorted(s for _, s in known)
    if size not in sizes:
        expected = " or ".join(str(s) for s in sizes)
        why = f"{size} bytes, the original has {expected} (gz or unpacked)"
    else:
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise EnvcheckError(
                f"cannot read {path}: {exc.strerror or exc}; check the file"
            ) from None
        if (digest, size) in known:
            return
        why = f"its SHA-256 is {digest[:16]}..., not the original's"
    raise EnvcheckError(
        f"{path} is not the original MNIST {name[: -len('.gz')]} ({why}); replace it with the "
        f"original: `envcheck fetch-mnist --dest {path.parent}` downloads and checks the files"
    )


def _read_all(paths: dict[str, Path]) -> tuple[np.ndarray, ...]:
    arrays = {name: read_idx(path, FILES[name][2]) for name, path in paths.items()}
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if int(arrays[name].max()) > 9:
            raise EnvcheckError(
                f"{paths[name]} holds labels above 9, so it is not MNIST; replace it with the "
                "original file (envcheck fetch-mnist downloads and checks them)"
            )
    return tuple(arrays[name] for name in FILES)


def locate_mnist(
    data_dir: str | os.PathLike | None = None, download: bool = True, verify: bool = True
) -> dict[str, Path]:
    """Return {file name: path} for the four files, downloading into the cache if allowed.

    Files in a named folder are checked against the known digests unless ``verify`` is
    false (a quick look for presence); the cache and downloads are always checked.
    """
    named = data_dir if data_dir else os.environ.get(ENV_DATA_DIR) or None
    if named:
        directory = Path(named).expanduser()
        source = "--data-dir" if data_dir else ENV_DATA_DIR
        if directory.exists() and not directory.is_dir():
            raise EnvcheckError(
                f"MNIST data directory {directory} (from {source}) is a file, not a folder; "
                f"point {source} at the folder that holds the four MNIST files"
            )
        if not directory.is_dir():
            raise EnvcheckError(
                f"MNIST data directory {directory} (from {source}) does not exist; create it "
                f"with `envcheck fetch-mnist --dest {directory}` or point {source} elsewhere"
            )
        found, missing = find_in_dir(directory)
        if missing:
            raise EnvcheckError(
                f"MNIST data directory {directory} (from {source}) lacks {', '.join(missing)}; "
                f"copy the files there or run `envcheck fetch-mnist --dest {directory}`"
            )
        if verify:
            for name, path in found.items():
                check_original(name, path)
        return found
    cache = cache_dir()
    cached = _valid_cache(cache)
    if cached is not None:
        return cached
    if not download:
        raise EnvcheckError(
            f"MNIST is not on this machine (no data directory named, no intact copy in "
            f"{cache}) and downloads are off; {ways_out(cache)}"
        )
    fetch_mnist(cache, elsewhere=_VERIFY_ELSEWHERE)
    return {name: cache / name for name in FILES}


# What verify (which has no --dest) suggests when the cache cannot take the files.
_VERIFY_ELSEWHERE = (
    "or pass --data-dir DIR (or set ENVCHECK_DATA_DIR) to a folder holding the four MNIST "
    "files (`envcheck fetch-mnist --dest DIR` fills one)"
)


def load_mnist(
    data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test) as uint8 arrays: 60000x28x28, 60000, ..."""
    x_train, y_train, x_test, y_test = _read_all(locate_mnist(data_dir, download))
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------- downloading


def fetch_mnist(
    dest: str | os.PathLike | None = None,
    mirrors: list[str] | tuple[str, ...] | None = None,
    progress: bool = True,
    elsewhere: str = "or choose another --dest",
) -> Path:
    """Make ``dest`` (default: the cache dir) hold the four checked files; return it.

    Files already there with the right checksum are kept; others are downloaded from
    the mirrors in turn, into a temporary file renamed only after its SHA-256 matched.
    ``elsewhere`` completes the fix when ``dest`` cannot take the files.
    """
    target = Path(dest).expanduser() if dest else cache_dir()
    created = not target.exists()  # a folder this fetch made is removed again if it stays empty
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvcheckError(
            f"cannot create {target}: {exc.strerror or exc}; make it writable {elsewhere}"
        ) from exc
    remove_stale_parts(target)
    todo = [n for n in FILES if not _is_original(target / n, FILES[n][0], FILES[n][1])]
    if not todo:
        return target
    try:
        urls = resolve_mirrors(mirrors)
        with _progress(progress) as bar:
            for name in todo:
                good = _fetch_one(name, target, urls, bar, elsewhere)
                urls.remove(good)
                urls.insert(0, good)  # try the mirror that just worked first for the next file
    except BaseException:
        if created:  # a failed first fetch leaves no empty --dest behind to mislead the next
            with contextlib.suppress(OSError):
                target.rmdir()  # only when empty: nothing downloaded is ever removed
        raise
    return target


def _fetch_one(name: str, target: Path, mirrors: list[str], bar, elsewhere: str) -> str:
    """Download one file from the first mirror that delivers it intact; return that mirror."""
    sha, size, _ = FILES[name]
    failures: list[str] = []
    bad_sums: list[str] = []
    for base in mirrors:
        url = base + name
        task = None
        if bar is not None:
            # A plain line too: where stderr is no terminal (verify's subprocess) rich
            # draws no bar, and this line is all the user sees of a slow download.
            # Text, not markup: an IPv6 mirror http://[fd00::1]:8000/ must print intact
            bar.console.print(safe_text(f"downloading {url}"), highlight=False)
            task = bar.add_task(name, total=size)
        try:
            got = _download(url, target / name, size, bar, task, elsewhere)
        except _Failed as exc:
            failures.append(f"{url}: {exc}")
            if bar is not None:
                bar.console.print(safe_text(f"  failed: {exc}"), highlight=False)
            continue
        finally:
            if bar is not None:
                bar.remove_task(task)
        if got == sha:
            return base
        if bar is not None:
            bar.console.print("  failed: SHA-256 mismatch", highlight=False)
        bad_sums.append(f"{url} gave SHA-256 {got[:16]}..., expected {sha[:16]}...")
    if bad_sums:
        raise EnvcheckError(
            f"{name} failed its checksum check ({'; '.join(bad_sums)}); the mirror served a "
            "damaged or different file and nothing was kept: retry, or give another mirror "
            f"with --mirror URL / {ENV_MIRRORS}"
        )
    raise EnvcheckError(
        f"cannot download MNIST ({'; '.join(failures)}); name a mirror this machine reaches "
        f"with --mirror URL (or ${ENV_MIRRORS}), otherwise {ways_out(target)}"
    )


class _Failed(Exception):
    """One mirror could not deliver a file; the next is tried."""


def _part_prefix(name: str) -> str:
    # Host and pid in the name tell a later fetch whether the writer is still alive.
    host = socket.gethostname().replace(".", "_") or "host"
    return f".{name}.{host}.{os.getpid()}."


def remove_stale_parts(target: Path) -> None:
    """Delete .part files left by a fetch that was killed (its process is gone, or long idle)."""
    host = socket.gethostname().replace(".", "_") or "host"
    for part in target.glob(".*.part"):
        if not any(part.name.startswith(f".{name}.") for name in FILES):
            continue  # not ours
        try:
            if time.time() - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
                continue
            # .<name>.<host>.<pid>.<random>.part; <name> has dots of its own
            fields = part.name.split(".")
            if fields[-4] == host and not _alive(int(fields[-3])):
                part.unlink()
        except (IndexError, ValueError, OSError):
            continue  # another naming, or removed meanwhile


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def deadline_s(size: int) -> float:
    """How long one mirror may take for a file of ``size`` bytes."""
    return DEADLINE_BASE_S + size / MIN_RATE


def _download(url: str, final: Path, size: int, bar, task, elsewhere: str) -> str:
    """Stream ``url`` to a temp file beside ``final``; rename it there only if the SHA matches.

    Returns the SHA-256 of what was received. The temp file never survives a failure, nor
    an interrupt (Ctrl-C, SIGTERM: see envcheck.interrupts).
    """
    try:
        fd, tmp_name = tempfile.mkstemp(
            dir=final.parent, prefix=_part_prefix(final.name), suffix=".part"
        )
    except OSError as exc:
        raise EnvcheckError(
            f"cannot write to {final.parent}: {exc.strerror or exc}; make it writable {elsewhere}"
        ) from exc
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    allowed = deadline_s(size)
    give_up = time.monotonic() + allowed
    try:
        with os.fdopen(fd, "wb") as out, _open(url) as response:
            while True:
                # read1: at most one socket read, so a trickle cannot hold us past the deadline
                block = response.read1(CHUNK)
                if not block:
                    break
                if time.monotonic() > give_up:
                    raise _Failed(
                        f"too slow: {received} of {size} bytes in {allowed:.0f} s, the deadline "
                        "for this file"
                    )
                received += len(block)
                if received > size:
                    # Stop an endless or wrong response early; the checksum fails below.
                    break
                digest.update(block)
                out.write(block)
                if bar is not None:
                    bar.update(task, completed=received)
        got = digest.hexdigest()
        if got == FILES[final.name][0]:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
            os.replace(tmp, final)
        return got
    except OSError as exc:
        if exc.errno in NO_ROOM:  # another mirror will not help: say what will
            raise EnvcheckError(
                f"no room to write {final.name} in {final.parent} ({exc.strerror}); free "
                f"{size / 1e6:.0f} MB there (or lift the quota or file size limit) {elsewhere}"
            ) from None
        raise _Failed(_describe(exc)) from exc
    except (http.client.HTTPException, ValueError) as exc:
        raise _Failed(_describe(exc)) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _open(url: str):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        # A loopback mirror must never go through an HTTP(S)_PROXY from the environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        return opener.open(request, timeout=TIMEOUT_S)
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        # the reason phrase is the server's: no control sequences, bounded
        return f"HTTP {exc.code} {one_line(exc.reason)[:100]}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return one_line(getattr(reason, "strerror", None) or str(reason))[:200]
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _progress(enabled: bool):
    """A rich progress bar on stderr (stdout may carry JSON), or a no-op context."""
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
