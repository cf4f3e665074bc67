"""fetch-mnist under faults: interrupted, killed, trickling mirrors, no room, no cache.

Local HTTP mirrors serve made-up bytes under the MNIST names: these faults happen before
any checksum is computed, so the real data set is not needed.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, clean_env, closed_port_url

from envcheck.errors import EnvcheckError
from envcheck.mnist import data
from envcheck.mnist.data import FILES, fetch_mnist, load_mnist

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals and rlimits are POSIX")


class _Mirror(http.server.BaseHTTPRequestHandler):
    """Serves every MNIST name with its true length, ``delay`` seconds per ``step`` bytes."""

    delay = 0.0
    step = 1 << 16

    def do_GET(self):  # noqa: N802 - name fixed by the base class
        name = self.path.rsplit("/", 1)[-1]
        if name not in FILES:
            self.send_error(404)
            return
        size = FILES[name][1]
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with contextlib.suppress(OSError):
            for sent in range(0, size, self.step):
                self.wfile.write(b"x" * min(self.step, size - sent))
                self.wfile.flush()
                time.sleep(self.delay)

    def log_message(self, format, *args):  # noqa: A002
        pass


@contextlib.contextmanager
def mirror(delay: float = 0.0, step: int = 1 << 16):
    handler = type("Handler", (_Mirror,), {"delay": delay, "step": step})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    finally:
        server.shutdown()
        server.server_close()


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.part"))


def fetch_cli(dest: Path, url: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "envcheck", "fetch-mnist", "--dest", str(dest), "--mirror", url],
        cwd=REPO,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def downloading(dest: Path, url: str) -> subprocess.Popen:
    """A `fetch-mnist` that has begun writing its first .part file."""
    proc = fetch_cli(dest, url)
    deadline = time.monotonic() + 60
    while not parts(dest) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert parts(dest), "the download never started"
    return proc


@posix_only
def test_sigterm_during_download_leaves_no_part_file(tmp_path: Path):
    with mirror(delay=0.2, step=1000) as url:
        proc = downloading(tmp_path, url)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@posix_only
def test_stale_part_files_of_a_killed_fetch_are_removed(tmp_path: Path):
    with mirror(delay=0.2, step=1000) as url:
        proc = downloading(tmp_path, url)
        proc.kill()  # SIGKILL: no cleanup possible
        proc.communicate()
    left = parts(tmp_path)
    assert len(left) == 1
    foreign = tmp_path / ".train-labels-idx1-ubyte.gz.otherhost.1.abc.part"
    foreign.write_bytes(b"x")  # another machine's live download on a shared folder: kept
    old = tmp_path / ".t10k-labels-idx1-ubyte.gz.otherhost.2.abc.part"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * data.STALE_PART_S,) * 2)
    with pytest.raises(EnvcheckError, match="cannot download MNIST"):
        fetch_mnist(tmp_path, mirrors=[closed_port_url()], progress=False)
    assert parts(tmp_path) == [foreign.name]


def test_trickling_mirror_is_given_up_at_the_deadline(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(data, "DEADLINE_BASE_S", 2.0)
    monkeypatch.setattr(data, "MIN_RATE", 10**12)
    start = time.monotonic()
    with mirror(delay=0.5, step=1) as slow:
        with pytest.raises(EnvcheckError) as info:
            fetch_mnist(tmp_path, mirrors=[slow, closed_port_url()], progress=False)
    elapsed = time.monotonic() - start
    message = info.value.message
    assert f"{slow}{TRAIN_IMAGES}: too slow:" in message and "the deadline for this file" in message
    assert elapsed < 30, elapsed  # one deadline per file and mirror, not forever
    assert parts(tmp_path) == []


def test_deadline_scales_with_size():
    names = ("t10k-labels-idx1-ubyte.gz", TRAIN_IMAGES)
    small, large = (data.deadline_s(FILES[n][1]) for n in names)
    assert data.DEADLINE_BASE_S < small < large


@posix_only
def test_no_room_names_freeing_space(tmp_path: Path):
    def small_files():  # in the child only: files may not grow past 64 KiB (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    with mirror() as url:
        proc = fetch_cli(tmp_path, url, preexec_fn=small_files)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]  # after the "downloading URL" progress lines
    assert line.startswith("envcheck: error: ")
    assert f"no room to write {TRAIN_IMAGES} in {tmp_path}" in line
    assert "free 10 MB there" in line and "cannot download" not in line
    assert parts(tmp_path) == []


def test_unusable_cache_during_verify_suggests_data_dir(tmp_path: Path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.delenv("ENVCHECK_DATA_DIR", raising=False)
    if blocker not in data.cache_dir().parents:
        pytest.skip("platformdirs ignores XDG_CACHE_HOME on this OS")
    with pytest.raises(EnvcheckError) as info:
        load_mnist(download=True)
    message = info.value.message
    assert message.startswith(f"cannot create {data.cache_dir()}")
    assert "--data-dir DIR" in message and "--dest" not in message.replace("--dest DIR`", "")


class _HostileReason(http.server.BaseHTTPRequestHandler):
    """A mirror whose HTTP reason phrase carries terminal sequences and markup."""

    def do_GET(self):  # noqa: N802 - name fixed by the base class
        self.wfile.write(b"HTTP/1.0 404 Not\x1b]0;owned\x07 Found [/b]\x1b[2J ALL PASSED\r\n\r\n")

    def log_message(self, format, *args):  # noqa: A002
        pass


def test_a_hostile_reason_phrase_reaches_the_terminal_as_plain_text(tmp_path: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileReason)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/m/"
        proc = subprocess.run(
            [sys.executable, "-m", "envcheck", "fetch-mnist", "--dest", str(tmp_path / "d"),
             "--mirror", url],
            cwd=REPO, env=clean_env(), capture_output=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr
    assert "HTTP 404 Not Found [/b] ALL PASSED" in err  # shown, harmlessly, as text
