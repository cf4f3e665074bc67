"""`envcheck lock` on hostile inputs: endless, huge, binary, old-format and damaged files.

Each is derived from the real pixi.lock / pixi.toml of this repository, and each must end
in one line naming the cause and the fix, read with a bound.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, run_envcheck

pytest.importorskip("rattler")


def error_line(*args: str) -> str:
    proc = run_envcheck("lock", *args, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envcheck: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("option", ["--lock", "--manifest"])
def test_endless_input_is_refused_unread(option: str):
    what = "lock file" if option == "--lock" else "manifest"
    assert f"{what} /dev/zero is not a regular file" in error_line(option, "/dev/zero")


def test_huge_lock_is_refused_by_size(tmp_path: Path):
    huge = tmp_path / "pixi.lock"
    with open(huge, "wb") as fh:
        fh.truncate(4 * 10**9)  # sparse: no disk used
    line = error_line("--lock", str(huge))
    assert f"lock file {huge} is 4000000000 bytes, more than the" in line
    assert "pass the workspace's lock with --lock PATH" in line


def test_binary_manifest_and_non_utf8_lock(tmp_path: Path):
    binary = tmp_path / "pixi.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    line = error_line("--manifest", str(binary))
    assert "is not UTF-8 text (byte 0x80 at offset 136" in line and "--manifest PATH" in line
    latin1 = tmp_path / "pixi.lock"
    text = (REPO / "pixi.lock").read_text(encoding="utf-8")
    latin1.write_bytes(("# Gr\u00fc\u00dfe\n" + text).encode("latin-1", errors="replace"))
    assert f"lock file {latin1} is not UTF-8 text (byte 0xfc at offset 4" in error_line(
        "--lock", str(latin1)
    )


def test_format_6_names_the_old_pixi(tmp_path: Path):
    old = tmp_path / "pixi.lock"
    text = (REPO / "pixi.lock").read_text(encoding="utf-8")
    old.write_text(re.sub(r"^version: 7$", "version: 6", text, count=1, flags=re.M))
    line = error_line("--lock", str(old))
    assert "has format version 6, written by a pixi older than 0.68" in line
    assert "`pixi lock`" in line and "subdir" not in line


def test_short_sha256_names_its_record(tmp_path: Path):
    text = (REPO / "pixi.lock").read_text(encoding="utf-8")
    match = re.search(r"^- conda: (\S+)\n(?:  .*\n)*?  sha256: ([0-9a-f]{64})$", text, re.M)
    assert match, "the lock has no conda record with a sha256"
    record, digest = match.group(1).rsplit("/", 1)[-1], match.group(2)
    damaged = tmp_path / "pixi.lock"
    damaged.write_text(text[: match.start(2)] + digest[:60] + text[match.end(2) :])
    line = error_line("--lock", str(damaged))
    assert f"the sha256 of {record} (line " in line and "is 60 characters" in line
    assert line.endswith("regenerate it with `pixi lock`")
