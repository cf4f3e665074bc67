"""Read IDX files (the MNIST container format), gzipped or not, with strict header checks.

IDX layout: two zero bytes, a type code, the number of dimensions, then one big-endian
uint32 per dimension, then the data. MNIST uses type 0x08 (unsigned byte) only.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from envcheck.errors import EnvcheckError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
# Larger files than this are not MNIST; the limit stops a corrupt header from asking for
# gigabytes of memory before the size check can fail.
MAX_BYTES = 256 * 1024 * 1024
FIX = "replace it with the original file (envcheck fetch-mnist downloads and checks them)"


def read_bytes(path: Path) -> bytes:
    """Return the file's content, gunzipped when it starts with the gzip magic."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            # Bounded: a huge file is refused unread, an endless one (a device) after the limit.
            too_big = os.fstat(fh.fileno()).st_size > MAX_BYTES
            raw = b"" if too_big else fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise EnvcheckError(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc
    if too_big or len(raw) > MAX_BYTES:
        raise EnvcheckError(f"{path} is larger than {MAX_BYTES} bytes, so it is not MNIST; {FIX}")
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        # Read in bounded form so a gzip bomb cannot exhaust memory.
        data = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(MAX_BYTES + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise EnvcheckError(
            f"{path} is not a complete gzip file ({exc}); the download was cut short or "
            "the file is damaged: delete it and fetch it again (envcheck fetch-mnist)"
        ) from exc
    if len(data) > MAX_BYTES:
        raise EnvcheckError(f"{path} unpacks to more than {MAX_BYTES} bytes (not MNIST); {FIX}")
    return data


def parse_idx(data: bytes, name: str = "<data>") -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking magic, dimensions and size."""
    if len(data) < 4:
        raise _bad(name, f"only {len(data)} bytes, shorter than an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise _bad(name, f"magic starts with 0x{zero:04x}, not 0x0000 (not an IDX file)")
    if dtype_code != UBYTE:
        raise _bad(name, f"data type code 0x{dtype_code:02x}; MNIST uses 0x08 (unsigned byte)")
    if not 1 <= ndim <= 4:
        raise _bad(name, f"{ndim} dimensions; MNIST files have 1 (labels) or 3 (images)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _bad(name, f"header cut off: {len(data)} bytes, need {header_len}")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header_len
    if actual != expected:
        shape = "x".join(str(d) for d in dims)
        what = "truncated" if actual < expected else "has trailing bytes"
        raise _bad(name, f"{what}: header says {shape} = {expected} bytes, found {actual}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file; when ``shape`` is given the array must have exactly that shape."""
    path = Path(path)
    array = parse_idx(read_bytes(path), str(path))
    if shape is not None and tuple(array.shape) != tuple(shape):
        got = "x".join(str(d) for d in array.shape)
        want = "x".join(str(d) for d in shape)
        raise _bad(str(path), f"holds {got}, expected {want}")
    return array


def _bad(name: str, why: str) -> EnvcheckError:
    return EnvcheckError(f"{name} is not a valid MNIST IDX file: {why}; {FIX}")
