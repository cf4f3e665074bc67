"""IDX parsing on small IDX files made here (the real data set is not needed to parse)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from envcheck.errors import EnvcheckError
from envcheck.mnist import parse_idx, read_idx
from envcheck.mnist.idx import MAX_BYTES


def idx(dims: tuple[int, ...], code: int = 0x08, magic_zero: int = 0, extra: int = 0) -> bytes:
    header = struct.pack(">HBB", magic_zero, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    return header + bytes(int(np.prod(dims)) + extra)


def test_parse_good_header():
    assert parse_idx(idx((3, 2, 2))).shape == (3, 2, 2)


def test_read_packed_and_unpacked(tmp_path: Path):
    data = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    raw = struct.pack(">HBB3I", 0, 8, 3, 6, 2, 2) + data.tobytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "a").write_bytes(raw)
    for name in ("a.gz", "a"):
        assert (read_idx(tmp_path / name, (6, 2, 2)) == data).all()
    with pytest.raises(EnvcheckError, match="holds 6x2x2, expected 6x4"):
        read_idx(tmp_path / "a", (6, 4))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (idx((3,), magic_zero=0x1F8B), "not an IDX file"),
        (idx((3,), code=0x0D), "data type code 0x0d"),
        (struct.pack(">HBB", 0, 8, 0), "0 dimensions"),
        (idx((3, 2, 2))[:10], "header cut off"),
        (idx((3, 2, 2))[:-1], "truncated"),
        (idx((3, 2, 2), extra=5), "trailing bytes"),
        (b"\x00\x00", "shorter than an IDX header"),
    ],
)
def test_parse_rejects_bad_header(data: bytes, why: str):
    with pytest.raises(EnvcheckError, match=why):
        parse_idx(data, "x.idx")


def test_truncated_gzip(tmp_path: Path):
    packed = gzip.compress(idx((100, 28, 28)))
    bad = tmp_path / "images.gz"
    bad.write_bytes(packed[: len(packed) // 3])
    with pytest.raises(EnvcheckError, match="not a complete gzip file"):
        read_idx(bad)


def test_gzip_bomb_and_huge_file_name_the_fix(tmp_path: Path):
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        block = bytes(1 << 20)
        for _ in range(MAX_BYTES // len(block) + 1):
            fh.write(block)
    with pytest.raises(EnvcheckError) as info:
        read_idx(bomb)
    assert "unpacks to more than" in info.value.message
    assert info.value.message.endswith("(envcheck fetch-mnist downloads and checks them)")
    huge = tmp_path / "huge-idx3-ubyte"
    with open(huge, "wb") as fh:
        fh.truncate(40 * 10**9)  # sparse; read whole, it ended in MemoryError
    with pytest.raises(EnvcheckError, match="is larger than .* so it is not MNIST; replace it"):
        read_idx(huge)
