"""Bad output paths, planted links, bad options and replays: real runs of `envcheck`.

Each case failed before: a traceback after the whole run, a temp file left beside the
target, a link followed, a nonsense option accepted, a replay checked against the wrong
profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, clean_env, run_envcheck

from envcheck.errors import EnvcheckError
from envcheck.fileio import check_output, write_atomic, write_output


def one_error_line(proc, code: int, *parts: str) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envcheck: error: "), proc.stderr
    for part in parts:
        assert part in lines[0]
    return lines[0]


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- output paths, before work


@pytest.mark.parametrize(
    ("option", "target", "says"),
    [
        ("--json", "/proc/x.json", "cannot write --json /proc/x.json: /proc does not take new"),
        ("--junit", "{tmp}", "--junit {tmp} is a folder; name a file in it"),
        ("--save-facts", "{tmp}/file/facts.json", "{tmp}/file is not a folder"),
        ("--json", "/dev/zero", "is a device, not a file"),
    ],
)
def test_verify_checks_outputs_before_any_work(tmp_path: Path, option, target, says):
    (tmp_path / "file").write_text("x")
    target, says = target.format(tmp=tmp_path), says.format(tmp=tmp_path)
    before = entries(tmp_path)
    proc = run_envcheck("verify", "--no-training", option, target, timeout=60)
    one_error_line(proc, 2, says)
    assert proc.stdout == ""  # refused before the first check ran
    assert entries(tmp_path) == before


def test_info_checks_its_output_first():
    proc = run_envcheck("info", "--json", "/proc/x.json", timeout=60)
    one_error_line(proc, 2, "cannot write --json /proc/x.json")
    assert proc.stdout == ""


def test_lock_json_to_a_folder_leaves_nothing(tmp_path: Path):
    pytest.importorskip("rattler")
    proc = run_envcheck("lock", "--json", str(tmp_path), timeout=120)
    one_error_line(proc, 2, f"--json {tmp_path} is a folder")
    assert entries(tmp_path) == []


# ---------------------------------------------------------------- write_atomic


def test_planted_link_at_the_old_temp_name_is_not_followed(tmp_path: Path):
    pytest.importorskip("rattler")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".r.json.tmp").symlink_to(victim)
    proc = run_envcheck("lock", "--json", str(tmp_path / "r.json"), timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert victim.read_text() == "precious"
    assert json.loads((tmp_path / "r.json").read_text())["schema_version"] == 1
    assert entries(tmp_path) == [".r.json.tmp", "r.json", "victim.txt"]


def test_longest_legal_names_and_modes(tmp_path: Path):
    name = "r" * 250 + ".json"  # 255 characters: the limit of most file systems
    write_atomic(tmp_path / name, "{}")
    assert (tmp_path / name).read_text() == "{}"
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.json", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
    (tmp_path / "kept.json").write_text("")
    os.chmod(tmp_path / "kept.json", 0o600)
    write_atomic(tmp_path / "kept.json", "y")
    assert (tmp_path / "kept.json").stat().st_mode & 0o777 == 0o600
    assert entries(tmp_path) == sorted([name, "kept.json", "new.json"])


def test_failed_write_leaves_nothing(tmp_path: Path):
    (tmp_path / "report.xml").mkdir()  # created after the check: the rename must fail
    with pytest.raises(EnvcheckError) as info:
        write_output(tmp_path / "report.xml", "<x/>", "--junit")
    assert info.value.message.startswith(f"cannot write --junit {tmp_path / 'report.xml'}: ")
    assert "nothing was written" in info.value.message
    assert entries(tmp_path) == ["report.xml"]


def test_missing_folders_are_fine(tmp_path: Path):
    check_output(tmp_path / "a" / "b" / "r.json", "--json")
    assert entries(tmp_path) == []  # the check creates nothing that stays


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--timeout-scale", "nan"], "--timeout-scale nan is not a positive finite number"),
        (["--timeout-scale", "inf"], "--timeout-scale inf is not a positive finite number"),
        (["--timeout-scale", "-1"], "is not a positive finite number"),
        (["--framework", ""], "--framework is empty"),
        (["--framework", " , "], "--framework is empty"),
    ],
)
def test_nonsense_options_are_usage_errors(args, says):
    one_error_line(run_envcheck("verify", *args, timeout=60), 2, says)


def test_info_refuses_an_empty_framework_list():
    one_error_line(run_envcheck("info", "--framework", "", timeout=60), 2, "--framework is empty")


# ---------------------------------------------------------------- replay


@pytest.fixture(scope="module")
def cuda12_facts(tmp_path_factory) -> Path:
    """Facts gathered for cuda12 from this machine's CPU-only torch."""
    facts = tmp_path_factory.mktemp("facts") / "facts.json"
    proc = run_envcheck(
        "verify", "--expect", "cuda12", "--framework", "torch", "--no-training",
        "--save-facts", str(facts),
    )  # fmt: skip
    assert proc.returncode == 1 and facts.is_file(), proc.stderr
    return facts


def replay(facts: Path, tmp_path: Path, *extra: str, **env: str) -> tuple[dict, str]:
    out = tmp_path / "replayed.json"
    proc = run_envcheck(
        "verify", "--replay", str(facts), "--json", str(out), *extra, env=clean_env(**env)
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(out.read_text()), proc.stdout


def build_torch(report: dict) -> dict:
    return next(
        c for cat in report["categories"] for c in cat["checks"] if c["id"] == "build.torch"
    )


def test_replay_uses_the_recorded_profile(cuda12_facts: Path, tmp_path: Path):
    # $ENVCHECK_PROFILE describes the replaying machine, not the recording
    report, stdout = replay(cuda12_facts, tmp_path, ENVCHECK_PROFILE="cpu")
    assert report["profile"] == "cuda12" and report["frameworks"] == ["torch"]
    assert build_torch(report)["status"] == "fail"
    assert "CPU-only build" in build_torch(report)["cause"]
    assert "profile cuda12 (as recorded; recorded: cuda12)" in stdout
    assert "frameworks torch (as recorded; recorded: torch)" in stdout


def test_replay_options_override_and_say_so(cuda12_facts: Path, tmp_path: Path):
    report, stdout = replay(cuda12_facts, tmp_path, "--expect", "cpu")
    assert report["profile"] == "cpu" and build_torch(report)["status"] == "pass"
    assert "profile cpu (from --expect; recorded: cuda12)" in stdout


def test_replay_of_a_huge_or_binary_file(tmp_path: Path):
    binary = tmp_path / "facts.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    one_error_line(
        run_envcheck("verify", "--replay", str(binary), timeout=60), 2, "is not UTF-8 text"
    )
    proc = run_envcheck("verify", "--replay", "/dev/zero", timeout=60)
    one_error_line(proc, 2, "recorded facts /dev/zero is not a regular file")


# ---------------------------------------------------------------- a probe's stderr

# VmHWM, not ru_maxrss: Linux carries the pre-exec peak of the forking process (pytest, which
# may hold torch by then) into the child's ru_maxrss; VmHWM belongs to the new image alone.
FLOOD_DRIVER = """
import re, sys
from pathlib import Path
from envcheck.runner import run_probe
out = run_probe("probes_for_tests:flood_stderr", {"megabytes": 300}, timeout=900,
                extra_path=[sys.argv[1]])
assert out.ok, out.describe_failure()
assert out.stderr_tail.endswith("the last line") and len(out.stderr) <= 8000, len(out.stderr)
status = Path("/proc/self/status").read_text()
print(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1))  # peak RSS, KiB
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_probe_stderr_is_kept_as_a_bounded_tail():
    proc = subprocess.run(
        [sys.executable, "-c", FLOOD_DRIVER, str(Path(__file__).parent)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=960,
    )
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stdout.split()[-1]) / 1024
    # it held 1.8 GiB for 600 MB before the bounded tail
    assert peak_mib < 200, f"envcheck held {peak_mib:.0f} MiB for 300 MB of probe stderr"
