"""Find MNIST on disk, or download it with checksum checks, and load it as numpy arrays.

Search order: a directory the user names (argument or ENVCHECK_DATA_DIR), the user cache
directory, then a download from the mirrors into that cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from envcheck.errors import EnvcheckError
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

# Per connect and per read: an unreachable mirror costs this long before the next is tried.
TIMEOUT_S = 20
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
        "MNIST .gz files, or run `pixi run fetch-mnist` (or `envcheck fetch-mnist`) on a "
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
        if not path.is_file() or sha256_file(path) != FILES[name][0]:
            return None
    return paths


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
    data_dir: str | os.PathLike | None = None, download: bool = True
) -> dict[str, Path]:
    """Return {file name: path} for the four files, downloading into the cache if allowed."""
    named = data_dir if data_dir else os.environ.get(ENV_DATA_DIR) or None
    if named:
        directory = Path(named).expanduser()
        source = "--data-dir" if data_dir else ENV_DATA_DIR
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
    fetch_mnist(cache)
    return {name: cache / name for name in FILES}


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
) -> Path:
    """Make ``dest`` (default: the cache dir) hold the four checked files; return it.

    Files already there with the right checksum are kept; others are downloaded from
    the mirrors in turn, into a temporary file renamed only after its SHA-256 matched.
    """
    target = Path(dest).expanduser() if dest else cache_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvcheckError(
            f"cannot create {target}: {exc.strerror or exc}; choose another --dest"
        ) from exc
    todo = [
        n for n in FILES if not (target / n).is_file() or sha256_file(target / n) != FILES[n][0]
    ]
    if not todo:
        return target
    urls = resolve_mirrors(mirrors)
    with _progress(progress) as bar:
        for name in todo:
            good = _fetch_one(name, target, urls, bar)
            urls.remove(good)
            urls.insert(0, good)  # try the mirror that just worked first for the next file
    return target


def _fetch_one(name: str, target: Path, mirrors: list[str], bar) -> str:
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
            bar.console.print(f"downloading {url}", highlight=False)
            task = bar.add_task(name, total=size)
        try:
            got = _download(url, target / name, size, bar, task)
        except _Failed as exc:
            failures.append(f"{url}: {exc}")
            if bar is not None:
                bar.console.print(f"  failed: {exc}", highlight=False)
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
    raise EnvcheckError(f"cannot download MNIST ({'; '.join(failures)}); {ways_out(target)}")


class _Failed(Exception):
    """One mirror could not deliver a file; the next is tried."""


def _download(url: str, final: Path, size: int, bar, task) -> str:
    """Stream ``url`` to a temp file beside ``final``; rename it there only if the SHA matches.

    Returns the SHA-256 of what was received. The temp file never survives a failure.
    """
    try:
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    except OSError as exc:
        raise EnvcheckError(
            f"cannot write to {final.parent}: {exc.strerror or exc}; choose another --dest"
        ) from exc
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out, _open(url) as response:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
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
    except (OSError, http.client.HTTPException, ValueError) as exc:
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
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return getattr(reason, "strerror", None) or str(reason)
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
