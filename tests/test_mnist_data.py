"""MNIST location, download (against a local HTTP mirror) and IDX parsing, on the real files."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import http.server
import re
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_DIR, closed_port_url, needs_mnist

from envcheck.errors import EnvcheckError
from envcheck.mnist import FILES, cache_dir, fetch_cmd, fetch_mnist, load_mnist

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
# Per-digit counts of the canonical sets: a cheap proof the labels parsed right.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

pytestmark = needs_mnist


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


@contextlib.contextmanager
def serving(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (a real HTTP mirror); yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror_root(tmp_path: Path) -> Path:
    """A web root whose mnist/ folder holds copies of the shared files (free to damage)."""
    folder = tmp_path / "www" / "mnist"
    folder.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(MNIST_DIR / name, folder / name)
    return tmp_path / "www"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user cache at an empty temp dir and clear the envcheck variables."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("ENVCHECK_DATA_DIR", raising=False)
    monkeypatch.delenv("ENVCHECK_MNIST_MIRRORS", raising=False)
    cache = cache_dir()
    if tmp_path not in cache.parents:
        pytest.skip("platformdirs ignores XDG_CACHE_HOME on this OS; cannot isolate the cache")
    return cache


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_mnist(arrays) -> None:
    x_train, y_train, x_test, y_test = arrays
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---------------------------------------------------------------- reading local copies


def test_load_from_named_dir():
    assert_mnist(load_mnist(MNIST_DIR))


def test_load_from_env_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENVCHECK_DATA_DIR", str(MNIST_DIR))
    assert_mnist(load_mnist(download=False))
    assert not isolated.exists()  # the cache was never needed


@pytest.mark.parametrize("layout", ["unpacked", "torchvision"])
def test_load_other_layouts(tmp_path: Path, layout: str):
    # Unpacked IDX files (no .gz), and torchvision's MNIST/raw folder.
    folder = tmp_path / ("MNIST/raw" if layout == "torchvision" else "")
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = folder / (name[:-3] if layout == "unpacked" else name)
        target.write_bytes(gzip.decompress((MNIST_DIR / name).read_bytes()))
    assert_mnist(load_mnist(tmp_path, download=False))


def test_named_dir_missing_files(tmp_path: Path):
    with pytest.raises(EnvcheckError, match=r"lacks .*fetch-mnist --dest"):
        load_mnist(tmp_path)
    with pytest.raises(EnvcheckError, match="does not exist"):
        load_mnist(tmp_path / "nope")


# ---------------------------------------------------------------- downloading


def test_fetch_from_local_mirror(tmp_path: Path, mirror_root: Path):
    dest = tmp_path / "dest"
    with serving(mirror_root) as url:
        assert fetch_mnist(dest, mirrors=[url], progress=False) == dest
    assert leftovers(dest) == sorted(FILES)  # and no temp files
    for name, (digest, size, _) in FILES.items():
        assert sha256(dest / name) == digest and (dest / name).stat().st_size == size
    assert_mnist(load_mnist(dest, download=False))
    # Files already there and intact are kept: no mirror is needed a second time.
    fetch_mnist(dest, mirrors=[closed_port_url()], progress=False)


def test_load_downloads_into_cache(isolated: Path, mirror_root: Path, monkeypatch):
    with serving(mirror_root) as url:
        monkeypatch.setenv("ENVCHECK_MNIST_MIRRORS", f"{url}, ")
        assert_mnist(load_mnist())
    assert leftovers(isolated) == sorted(FILES)
    # Offline now, yet the cache serves.
    monkeypatch.setenv("ENVCHECK_MNIST_MIRRORS", closed_port_url())
    assert_mnist(load_mnist())


def test_dead_and_404_mirrors_then_working_one(tmp_path: Path, mirror_root: Path):
    empty = tmp_path / "empty-www"
    empty.mkdir()
    dest = tmp_path / "dest"
    with serving(empty) as missing, serving(mirror_root) as good:
        fetch_mnist(dest, mirrors=[closed_port_url(), missing, good], progress=False)
    assert leftovers(dest) == sorted(FILES)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_bad_download_fails_checksum_and_keeps_nothing(
    isolated: Path, mirror_root: Path, monkeypatch, damage: str
):
    served = mirror_root / "mnist" / TRAIN_IMAGES
    data = bytearray(served.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    with serving(mirror_root) as url:
        monkeypatch.setenv("ENVCHECK_MNIST_MIRRORS", url)
        with pytest.raises(EnvcheckError, match="failed its checksum check") as info:
            load_mnist()
    assert "\n" not in info.value.message
    # The damaged file is fetched first, so the cache must hold nothing at all.
    assert leftovers(isolated) == []


def test_offline_without_data_names_both_ways_out(isolated: Path, monkeypatch):
    monkeypatch.setenv("ENVCHECK_MNIST_MIRRORS", closed_port_url())
    with pytest.raises(EnvcheckError) as info:
        load_mnist()
    message = info.value.message
    assert "\n" not in message
    for part in (
        "cannot download MNIST",
        "--data-dir",
        "ENVCHECK_DATA_DIR",
        "pixi run --locked fetch-mnist",
    ):
        assert part in message
    assert leftovers(isolated) == []
    with pytest.raises(
        EnvcheckError, match=r"downloads are off.*--data-dir.*pixi run --locked fetch-mnist"
    ):
        load_mnist(download=False)


def test_fetch_command(tmp_path: Path, mirror_root: Path, capsys):
    parser = argparse.ArgumentParser()
    fetch_cmd.add_arguments(parser)
    dest = tmp_path / "dest"
    with serving(mirror_root) as url:
        args = parser.parse_args(
            ["--dest", str(dest), "--mirror", closed_port_url(), "--mirror", url]
        )
        assert fetch_cmd.run(args) == 0
    assert leftovers(dest) == sorted(FILES)
    assert str(dest) in capsys.readouterr().out


# ---------------------------------------------------------------- refusing other files


def gz_idx(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def copy_mnist(folder: Path) -> Path:
    for name in FILES:
        shutil.copyfile(MNIST_DIR / name, folder / name)
    return folder


def test_shuffled_labels_are_refused(tmp_path: Path):
    # A valid IDX set with shuffled labels trained to 11% and was blamed on the device.
    labels = load_mnist(MNIST_DIR)[1]
    shuffled = np.random.default_rng(0).permutation(labels)
    path = copy_mnist(tmp_path) / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gz_idx(shuffled))
    with pytest.raises(EnvcheckError) as info:
        load_mnist(tmp_path, download=False)
    message = info.value.message
    assert message.startswith(f"{path} is not the original MNIST train-labels-idx1-ubyte")
    assert f"envcheck fetch-mnist --dest {tmp_path}" in message and "\n" not in message


def test_other_files_are_refused_by_size_before_reading(tmp_path: Path):
    copy_mnist(tmp_path)
    # labels where the images should be, a truncated download, a huge sparse unpacked file
    shutil.copyfile(MNIST_DIR / "train-labels-idx1-ubyte.gz", tmp_path / TRAIN_IMAGES)
    with pytest.raises(EnvcheckError, match=r"\(28881 bytes, the original has 9912422 or 47040016"):
        load_mnist(tmp_path)
    raw = (MNIST_DIR / TRAIN_IMAGES).read_bytes()
    (tmp_path / TRAIN_IMAGES).write_bytes(raw[: len(raw) // 3])
    with pytest.raises(EnvcheckError, match=re.escape(f"{tmp_path / TRAIN_IMAGES} is not the")):
        load_mnist(tmp_path)
    (tmp_path / TRAIN_IMAGES).unlink()
    with open(tmp_path / TRAIN_IMAGES[:-3], "wb") as fh:
        fh.truncate(40 * 10**9)  # sparse: no disk used; it used to end in MemoryError
    with pytest.raises(EnvcheckError, match="40000000000 bytes, the original has"):
        load_mnist(tmp_path)


def test_data_dir_naming_a_file(tmp_path: Path):
    file = tmp_path / "mnist.tar"
    file.write_bytes(b"x")
    with pytest.raises(EnvcheckError, match="is a file, not a folder; point --data-dir at"):
        load_mnist(file)


def _gzip_of_size(raw: bytes, size: int) -> bytes:
    """A valid gzip of ``raw`` exactly ``size`` bytes long: padded with a header comment."""
    import zlib

    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(raw) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(raw), len(raw))
    pad = size - (10 + len(body) + len(trailer)) - 1  # the comment ends in a NUL
    if pad < 0:
        pytest.skip("the tampered labels compress larger than the original")
    header = b"\x1f\x8b\x08\x10" + b"\0" * 4 + b"\x02\xff"  # FCOMMENT
    return header + b"x" * pad + b"\0" + body + trailer


@needs_mnist
def test_a_tampered_file_of_the_original_size_is_refused_by_its_digest(tmp_path: Path):
    # Two labels swapped, re-packed to the very size of the original: only SHA-256 tells.
    name = "train-labels-idx1-ubyte.gz"
    original = (MNIST_DIR / name).read_bytes()
    raw = bytearray(gzip.decompress(original))
    first = raw[8]
    other = next(i for i in range(9, len(raw)) if raw[i] != first)
    raw[8], raw[other] = raw[other], raw[8]
    tampered = _gzip_of_size(bytes(raw), len(original))
    assert len(tampered) == len(original) and gzip.decompress(tampered) == bytes(raw)
    path = copy_mnist(tmp_path) / name
    path.write_bytes(tampered)
    with pytest.raises(EnvcheckError) as info:
        load_mnist(tmp_path, download=False)
    assert info.value.message.startswith(f"{path} is not the original MNIST train-labels")
    assert "its SHA-256 is" in info.value.message
