"""The one I/O guard, through every command that reads or writes: real FIFOs, devices, links,
hostile files, closed pipes and a terminal that cannot encode a path (issue 23, classes 1-5
and 7).

Each case failed before the guard: a hang, a traceback, a replaced FIFO or link, a report
lost, a screen cleared by a machine's report. Inputs that made the old code read without
bound run under an address-space limit, so a regression fails here instead of filling
the machine's memory.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, clean_env, closed_port_url
from facts_library import healthy_cuda12

from envcheck.errors import EnvcheckError
from envcheck.guard import (
    append_step_summary,
    check_output,
    escape,
    load_file,
    plain,
    read_input,
    write_output,
)
from envcheck.model import CheckResult, Report, Status
from envcheck.report.junit import to_junit_many

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and rlimits: POSIX")
XSD = REPO / "envcheck" / "report" / "junit.xsd"
MEMORY_CAP = 2 * 2**30  # bytes of address space: far more than these commands need
HOSTILE = "ok \x1b[2J\x1b[H\x1b]0;owned\x07\x1b]8;;http://x\x1b\\ALL PASSED [/b] \x00\x07\x9b2J"


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def envcheck(*args: str, timeout: float = 60, module: str = "envcheck", **env: str):
    """Run `python -m envcheck ARGS` for real, memory-capped, with a time limit."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=clean_env(**env),
        capture_output=True,
        timeout=timeout,
        preexec_fn=_capped,
    )


def one_line(proc, code: int, *parts: str) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def doctor_facts(tmp_path: Path, **nvml: object) -> Path:
    facts = {
        "platform": {"system": "linux", "machine": "x86_64", "subdir": "linux-64",
                     "glibc": "2.35", "osx": None, "python": "3.12.1"},
        "nvml": {"available": False, "reason": "no_driver", "error": "no driver"} | nvml,
    }  # fmt: skip
    path = tmp_path / "machine.json"
    path.write_text(json.dumps({"facts": facts}))
    return path


def recording(tmp_path: Path, change=None) -> Path:
    """A facts file of the shape `verify --save-facts` writes (the healthy cuda12 machine)."""
    data = {
        "profile": "cuda12",
        "frameworks": ["torch"],
        "require_gpu": False,
        "facts": healthy_cuda12(),
    }
    if change:
        change(data)
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data))
    return path


def a_report(tmp_path: Path, name: str = "node1", change=None) -> Path:
    report = Report(
        "cpu", ["torch"], False, {"python": {"version": "3.12"}},
        [CheckResult("imports", "torch", Status.PASS, "torch 2.9 imports", duration_s=0.5),
         CheckResult("build", "torch", Status.FAIL, "CPU build", cause="c", fix="f")],
        "0.1.0", "2026-01-02T03:04:05+00:00", 1.5,
    )  # fmt: skip
    data = report.to_dict()
    if change:
        change(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------ 1. output paths


def test_dev_null_is_discard_and_stays_a_device(tmp_path: Path):
    # a link to /dev/null in a private folder: the old code replaced it with a regular file
    # (and, run as root, /dev/null itself)
    null = tmp_path / "null"
    null.symlink_to(os.devnull)
    proc = envcheck("doctor", "--facts", str(doctor_facts(tmp_path)), "--json", str(null))
    assert proc.returncode == 0, proc.stderr
    assert null.is_symlink() and os.readlink(null) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize(
    "command",
    [
        ["doctor", "--facts", "{facts}", "--json", "{out}"],
        ["report", "{report}", "--junit", "{out}"],
        ["verify", "--replay", "{recording}", "--json", "{out}"],
        ["verify", "--replay", "{recording}", "--junit", "{out}"],
        ["verify", "--replay", "{recording}", "--save-facts", "{out}"],
    ],
)
def test_fifo_and_link_outputs_are_refused_before_work(tmp_path: Path, fifo: Path, command):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    names = {
        "facts": doctor_facts(tmp_path),
        "report": a_report(tmp_path),
        "recording": recording(tmp_path),
    }
    for out, says in ((fifo, "is a pipe (FIFO)"), (link, "is a symbolic link")):
        args = [a.format(out=out, **names) for a in command]
        proc = envcheck(*args)
        one_line(proc, 2, says)
        assert proc.stdout == b""  # refused before any work
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert victim.read_text() == "precious"


def test_dev_stdout_is_written_through(tmp_path: Path):
    proc = envcheck("doctor", "--facts", str(doctor_facts(tmp_path)), "--json", "/dev/stdout")
    assert proc.returncode == 0, proc.stderr
    start = proc.stdout.index(b"{")
    answer, _ = json.JSONDecoder().raw_decode(proc.stdout[start:].decode())
    assert answer["facts"]["platform"]["subdir"] == "linux-64"
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")


def test_a_write_that_fails_late_is_one_line_and_leaves_nothing(tmp_path: Path):
    # RLIMIT_FSIZE makes the write fail with EFBIG, as a full disk fails with ENOSPC
    report = a_report(tmp_path)
    out = tmp_path / "out" / "fleet.xml"

    def small_files() -> None:
        _capped()
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    proc = subprocess.run(
        [sys.executable, "-m", "envcheck", "report", str(report), "--junit", str(out)],
        cwd=REPO, env=clean_env(), capture_output=True, timeout=60, preexec_fn=small_files,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert f"cannot write --junit {out}: File too large; nothing was written" in err
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_a_name_over_255_bytes_is_refused_first(tmp_path: Path):
    out = tmp_path / ("r" * 256 + ".json")
    proc = envcheck("doctor", "--facts", str(doctor_facts(tmp_path)), "--json", str(out))
    one_line(proc, 2, "the file name is 261 bytes, more than the 255")


def test_write_output_to_proc_after_the_check_is_one_line():
    with pytest.raises(EnvcheckError, match="cannot write --json /proc/x.json: .*nothing was"):
        write_output("/proc/x.json", "{}", "--json")


@pytest.mark.parametrize("target", ["fifo", "link", "dir"])
def test_step_summary_that_is_not_a_file_is_a_warning_not_a_hang(tmp_path, fifo, target):
    path = {"fifo": fifo, "link": tmp_path / "link", "dir": tmp_path}[target]
    if target == "link":
        path.symlink_to(tmp_path / "elsewhere.md")
    proc = envcheck("report", str(a_report(tmp_path)), GITHUB_STEP_SUMMARY=str(path))
    err = proc.stderr.decode()
    assert proc.returncode == 1  # the report's own verdict (a FAIL), not a crash
    assert "Traceback" not in err and "the step summary was not written" in err
    assert not (tmp_path / "elsewhere.md").exists()


def test_step_summary_appends_to_a_regular_file(tmp_path: Path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_step_summary("after \ud800\n") is None
    assert summary.read_text() == "before\nafter ?\n"


def test_check_output_refuses_devices_but_takes_streams_and_null():
    for ok in ("/dev/stdout", "/dev/stderr", "/dev/null"):
        check_output(ok, "--json")
    with pytest.raises(EnvcheckError, match="is a device, not a file"):
        check_output("/dev/zero", "--json")


# ------------------------------------------------------------------ 2. input files


@pytest.mark.parametrize("source", ["fifo", "/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize(
    "command",
    [
        ["doctor", "--facts", "{src}"],
        ["report", "{src}"],
        ["verify", "--replay", "{src}"],
        ["lock", "--manifest", "{src}"],
        ["lock", "--manifest", "pixi.toml", "--lock", "{src}"],
    ],
)
def test_inputs_that_are_not_files_are_refused_without_reading(fifo, source, command):
    src = str(fifo) if source == "fifo" else source
    if command[0] == "lock":
        pytest.importorskip("rattler")
    proc = envcheck(*[a.format(src=src) for a in command], timeout=30)
    err = proc.stderr.decode()
    assert proc.returncode in (1, 2) and "Traceback" not in err, err
    assert "is not a regular file" in err


def test_read_input_checks_the_type_before_opening(fifo: Path):
    # a FIFO without a writer blocks open(): only a type check before opening avoids it
    with pytest.raises(EnvcheckError, match="is not a regular file"):
        read_input(fifo, 100, "facts", "fix")
    ten = fifo.parent / "ten"
    ten.write_bytes(b"0123456789")
    with pytest.raises(EnvcheckError, match="is 10 bytes, more than the 5"):
        read_input(ten, 5, "x", "fix")
    assert read_input(ten, 10, "x", "fix") == b"0123456789"


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000])
@pytest.mark.parametrize("option", ["doctor", "report", "replay"])
def test_deep_json_is_refused_in_one_line(tmp_path: Path, text: str, option: str):
    path = tmp_path / "deep.json"
    path.write_text(text)
    args = {"doctor": ["doctor", "--facts"], "report": ["report"], "replay": ["verify", "--replay"]}
    proc = envcheck(*args[option], str(path))
    err = proc.stderr.decode()
    assert proc.returncode in (1, 2) and "Traceback" not in err, err
    assert "nests deeper than 64 levels" in err
    refusal = next(line for line in err.splitlines() if "nests deeper" in line)
    assert refusal.count(str(path)) == 1, refusal  # the file named once, not twice


def test_deep_toml_manifest_is_one_line(tmp_path: Path):
    pytest.importorskip("rattler")
    manifest = tmp_path / "pixi.toml"
    manifest.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    proc = envcheck("lock", "--manifest", str(manifest))
    one_line(proc, 1, "nests deeper than 64 levels")


def yaml_bomb(levels: int = 9) -> str:
    lines = ["version: 7", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*{chr(96 + i)}"] * 9)
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{refs}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path):
    pytest.importorskip("rattler")
    lock = tmp_path / "pixi.lock"
    lock.write_text(yaml_bomb())
    assert lock.stat().st_size < 1024
    proc = envcheck("lock", "--manifest", "pixi.toml", "--lock", str(lock), timeout=20)
    one_line(proc, 1, "uses YAML anchors or aliases")


def test_yaml_loader_refuses_aliases_and_reads_plain_yaml(tmp_path: Path):
    pytest.importorskip("yaml")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(yaml_bomb())
    with pytest.raises(EnvcheckError, match="anchors or aliases"):
        load_file(bomb, "yaml", 2**20, "file", "fix")
    fine = tmp_path / "fine.yaml"
    fine.write_text("a: [1, 2]\nspec: pytorch * cuda*\nb: '*not an alias'\n")
    assert load_file(fine, "yaml", 2**20, "file", "fix") == {
        "a": [1, 2], "spec": "pytorch * cuda*", "b": "*not an alias",
    }  # fmt: skip


def test_the_real_lock_has_no_anchors():
    from envcheck.guard import refuse_yaml_aliases

    refuse_yaml_aliases((REPO / "pixi.lock").read_text())


# ------------------------------------------------------------------ 3. types, on load


REPLAY_CASES = [
    (lambda d: d.update(require_gpu="false"), "require_gpu is a string ('false'), not true/false"),
    (lambda d: d.update(facts=[1, 2]), "facts is a list"),
    (lambda d: d.update(frameworks="torch"), "frameworks is a string"),
    (lambda d: d["facts"]["nvml"].update(ok="yes"), "facts.nvml.ok is a string"),
    (lambda d: d["facts"]["nvml"].update(data=[]), "facts.nvml.data is a list"),
    (lambda d: d["facts"]["nvml"].update(seconds="1"), "facts.nvml.seconds is a string"),
    (lambda d: d["facts"]["nvml"].update(seconds=10**400), "integer of 401 digits"),
    (lambda d: d["facts"]["nvml"].update(seconds=float("nan")), "facts.nvml.seconds is nan"),
    (
        lambda d: d["facts"]["torch.facts"]["data"].update(device_count=float("inf")),
        "facts.torch.facts.data.device_count is inf",
    ),  # fmt: skip
    (lambda d: d["facts"].update(nvml="x"), "facts.nvml is a string"),
    (
        lambda d: d["facts"]["environment"]["data"].update(python="3.12"),
        "facts.environment.data.python is a string",
    ),  # fmt: skip
    (
        lambda d: d["facts"]["environment"]["data"]["variables"].update(CUDA_VISIBLE_DEVICES=0),
        "facts.environment.data.variables.CUDA_VISIBLE_DEVICES is an integer",
    ),  # fmt: skip
    (
        lambda d: d["facts"]["torch.facts"]["data"].update(devices="none"),
        "facts.torch.facts.data.devices is a string",
    ),  # fmt: skip
    (
        lambda d: d["facts"]["nvml"]["data"]["gpus"][0].update(compute_capability="sm_90"),
        "facts.nvml.data.gpus[0].compute_capability is 'sm_90', not MAJOR.MINOR",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("change", "says"), REPLAY_CASES)
def test_replay_file_of_the_wrong_shape_is_one_line(tmp_path: Path, change, says):
    proc = envcheck("verify", "--replay", str(recording(tmp_path, change)))
    one_line(proc, 2, says, "pass a file written by `envcheck verify --save-facts`")


def _check(d, i=0):
    return d["categories"][0]["checks"][i]


REPORT_CASES = [
    (lambda d: d.update(require_gpu="false"), "require_gpu is a string"),
    (lambda d: d.update(duration_s="1.5"), "duration_s is a string"),
    (lambda d: d.update(duration_s=10**400), "integer of 401 digits"),
    (lambda d: d.update(duration_s=float("inf")), "duration_s is inf"),
    (lambda d: d.update(frameworks={"torch": 1}), "frameworks is an object"),
    (lambda d: d.update(environment=[]), "environment is a list"),
    (lambda d: d.update(categories={}), "categories is an object"),
    (lambda d: _check(d).update(message=["x"]), "categories[0].checks[0].message is a list"),
    (lambda d: _check(d).update(duration_s=float("nan")), "checks[0].duration_s is nan"),
    (lambda d: _check(d).update(devices=[1]), "categories[0].checks[0].devices[0] is an integer"),
    # a string where the list of root causes belongs ("abc" once loaded as ['a', 'b', 'c'])
    (lambda d: _check(d).update(follows="abc"), "categories[0].checks[0].follows is a string"),
    (lambda d: _check(d).update(follows=[1]), "categories[0].checks[0].follows[0] is an integer"),
]


@pytest.mark.parametrize(("change", "says"), REPORT_CASES)
def test_report_of_the_wrong_shape_is_refused_naming_the_field(tmp_path, change, says):
    good = a_report(tmp_path, "good")
    bad = a_report(tmp_path, "bad", change)
    proc = envcheck("report", str(good), str(bad))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert f"refused {bad}:" in err and says in err
    assert b"good" in proc.stdout  # the other machine is still reported


DOCTOR_CASES = [
    ({"available": "false"}, "facts.nvml.available is a string"),
    ({"available": True, "gpus": {"0": {}}}, "facts.nvml.gpus is an object"),
    ({"available": True, "gpus": [{"index": "0"}]}, "facts.nvml.gpus[0].index is a string"),
    ({"available": True, "gpus": [{"name": 7}]}, "facts.nvml.gpus[0].name is an integer"),
    ({"available": True, "driver_version": 550}, "facts.nvml.driver_version is an integer"),
    ({"available": True, "gpus": [{"compute_capability": "abc"}]}, "not MAJOR.MINOR"),
    ({"available": True, "gpus": [{"compute_capability": "9.9.9"}]}, "'9.9.9', not MAJOR"),
]


@pytest.mark.parametrize(("nvml", "says"), DOCTOR_CASES)
def test_doctor_facts_of_the_wrong_shape_are_one_line(tmp_path, nvml, says):
    proc = envcheck("doctor", "--facts", str(doctor_facts(tmp_path, **nvml)))
    one_line(proc, 1, says)


def test_envcheck_never_writes_nan_it_would_refuse():
    from envcheck.report.json_report import to_json

    check = CheckResult("training", "torch", Status.FAIL, "m", figures={"loss": float("nan")})
    report = Report("cpu", [], False, {}, [check], "0.1.0", "2026-01-01T00:00:00", 1.0)
    data = json.loads(to_json(report))
    assert data["categories"][0]["checks"][0]["figures"]["loss"] is None


# ------------------------------------------------------------------ 4. terminal and markup


def _no_escapes(data: bytes) -> None:
    assert b"\x1b" not in data and b"\x07" not in data and b"\x9b" not in data, data[:2000]


def test_a_hostile_report_cannot_drive_the_terminal(tmp_path: Path):
    def poison(d):
        d["categories"][1]["checks"][0].update(message=HOSTILE, cause=HOSTILE, fix=HOSTILE)

    bad = a_report(tmp_path, "evil\x1b[2Jname", poison)
    summary = tmp_path / "summary.md"
    xml = tmp_path / "fleet.xml"
    proc = envcheck("report", str(bad), "--junit", str(xml), GITHUB_STEP_SUMMARY=str(summary))
    assert proc.returncode == 1, proc.stderr
    _no_escapes(proc.stdout + proc.stderr)
    _no_escapes(summary.read_bytes())
    out = proc.stdout.decode()
    assert "[/b]" in out and "ALL PASSED" in out  # shown as text, harmlessly
    ET.fromstring(xml.read_bytes())  # well-formed despite NUL, BEL and ESC


def test_markup_in_a_replayed_conda_prefix_neither_crashes_nor_loses_the_report(tmp_path):
    def poison(d):
        env = d["facts"]["environment"]["data"]
        env["pixi_environment"] = None
        env["conda_prefix"] = "/opt/[/b]envs/[red]x\x1b]0;t\x07"
        d["facts"]["nvml"]["data"]["gpus"][0]["name"] = "NVIDIA [/] H100 \x1b[2J"

    out = tmp_path / "r.json"
    proc = envcheck("verify", "--replay", str(recording(tmp_path, poison)), "--json", str(out))
    err = proc.stderr.decode()
    assert proc.returncode in (0, 1) and "Traceback" not in err and "MarkupError" not in err, err
    assert "/opt/[/b]envs/[red]x" in proc.stdout.decode()
    _no_escapes(proc.stdout)
    assert json.loads(out.read_text())["schema_version"] == 1


def test_markup_and_escapes_in_a_gpu_name_for_doctor(tmp_path: Path):
    gpu = {"index": 0, "name": "A100 [/b]\x1b]0;pwn\x07 [bold]x", "compute_capability": "8.0"}
    facts = doctor_facts(tmp_path, available=True, driver_version="550.1",
                         cuda_driver_version="12.4", gpus=[gpu])  # fmt: skip
    proc = envcheck("doctor", "--facts", str(facts))
    assert proc.returncode in (0, 1) and b"Traceback" not in proc.stderr, proc.stderr
    assert "A100 [/b] [bold]x" in proc.stdout.decode()
    _no_escapes(proc.stdout)


def test_bracketed_mirror_urls_print_intact(tmp_path: Path):
    # nothing listens there: each download fails, and every line names the mirror as given;
    # "[fd00]" reads as a markup tag, which rich swallowed
    ipv6, tagged = "http://[::1]:9/", closed_port_url().rstrip("/") + "/[fd00]/m/"
    args = ["fetch-mnist", "--dest", str(tmp_path / "m"), "--mirror", ipv6, "--mirror", tagged]
    proc = envcheck(*args, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    for url in (ipv6, tagged):
        assert f"downloading {url}train-images-idx3-ubyte.gz" in err
    assert err.strip().splitlines()[-1].startswith("envcheck: error: cannot download MNIST")


def test_plain_and_escape_strip_every_control_sequence():
    assert plain(HOSTILE) == "ok ALL PASSED [/b] "
    assert escape("http://[fd00::1]:8000/ [/b]") == "http://\\[fd00::1]:8000/ \\[/b]"
    assert plain("tab\tnew\nline") == "tab\tnew\nline"
    assert plain("\ud800") == "\ufffd"


def test_junit_is_well_formed_and_fits_the_xsd_whatever_the_report_holds():
    xmlschema = pytest.importorskip("xmlschema")
    checks = [
        CheckResult("build", "x\x01y", Status.FAIL, HOSTILE, cause="\x00\ud800", fix="\x1b",
                    duration_s=float("nan")),
        CheckResult("imports", "torch", Status.PASS, "ok", duration_s=float("inf")),
        CheckResult("devices", "gpu", Status.SKIP, "\x0b", duration_s=-3.0),
    ]  # fmt: skip
    report = Report("cpu", ["torch"], False, {}, checks, "0.1.0", "not a time \x02", float("nan"))
    text = to_junit_many([("m\x1b", report)], "fleet\x00")
    ET.fromstring(text.encode())
    xmlschema.XMLSchema(str(XSD)).validate(text)
    assert 'time="nan"' not in text and 'time="inf"' not in text and 'time="-' not in text


# ------------------------------------------------------------------ 5. output streams


def _replay_args(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "envcheck", "verify", "--replay", str(recording(tmp_path))]


def test_reports_are_written_when_stdout_is_closed_early(tmp_path: Path):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    args = [*_replay_args(tmp_path), "--json", str(js), "--junit", str(xml)]
    # `| head -1`: the reader takes one line and goes away
    proc = subprocess.Popen(args, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_capped)  # fmt: skip
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err
    report = json.loads(js.read_text())
    assert proc.returncode == report["exit_code"], err  # the verdict, not the broken pipe
    ET.fromstring(xml.read_bytes())


def test_an_ascii_terminal_and_a_non_ascii_path_keep_the_report(tmp_path: Path):
    # the replayed file's name is printed (the replay note): it cannot be encoded in ASCII
    folder = tmp_path / "données-数据"
    folder.mkdir()
    out = folder / "rapport.json"
    args = [sys.executable, "-m", "envcheck", "verify", "--replay", str(recording(folder))]
    proc = subprocess.run(
        [*args, "--json", str(out)],
        cwd=REPO, env=clean_env(PYTHONIOENCODING="ascii"), capture_output=True, timeout=60,
    )  # fmt: skip
    assert b"Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1)
    assert "donn\\xe9es" in proc.stdout.decode("ascii")  # shown escaped, not lost
    assert json.loads(out.read_text(encoding="utf-8"))["schema_version"] == 1


# ------------------------------------------------------------------ 7. the distributed entry


def dist(*args: str, timeout: float = 60, **env: str):
    base = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}
    return envcheck(*args, module="envcheck.distributed", timeout=timeout, **(base | env))


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--timeout", "inf"], {}, "--timeout inf: both must be positive and finite"),
        (["--timeout", "nan"], {}, "--timeout nan: both must be positive and finite"),
        ([], {"MASTER_PORT": "99999"}, "MASTER_PORT=99999 is not a TCP port (1-65535)"),
        ([], {"MASTER_PORT": "0"}, "MASTER_PORT=0 is not a TCP port"),
        (["--out", "/proc/x.json"], {}, "cannot write --out /proc/x.json"),
    ],
)
def test_distributed_usage_errors(args, env, says):
    proc = dist(*args, **env)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envcheck.distributed: error: "), err
    assert says in err


def test_distributed_unresolvable_master_addr_is_one_line():
    proc = dist(MASTER_ADDR="no-such-host.invalid")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert "MASTER_ADDR='no-such-host.invalid' does not resolve" in err


def test_distributed_unreachable_store_is_one_line_not_cpp_frames():
    pytest.importorskip("torch")
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    proc = dist("--timeout", "2", "--sizes", "4K", "--iters", "1", timeout=120,
                RANK="1", WORLD_SIZE="2", MASTER_PORT=port)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "frame #" not in err and "Traceback" not in err, err
    assert f"rank 1 could not reach the store at 127.0.0.1:{port}" in err
    assert len(err.strip().splitlines()) == 1, err


def test_distributed_out_write_failure_after_a_pass_is_said(tmp_path: Path):
    pytest.importorskip("torch")
    out = tmp_path / "result.json"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (50, 50))

    proc = subprocess.run(
        [sys.executable, "-m", "envcheck.distributed", "--out", str(out), "--sizes", "4K",
         "--iters", "1", "--backend", "gloo"],
        cwd=REPO, capture_output=True, timeout=180, preexec_fn=small_files,
        env=clean_env(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(29600 + os.getpid() % 300)),
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1, (err, proc.stdout)
    assert f"cannot write --out {out}: File too large" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
