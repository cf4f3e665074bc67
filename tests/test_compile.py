"""The compile category: torch.compile and XLA for real on the CPU, the toolchain rules, and the
lock carrying what compile needs.

A cold torch.compile takes 15-30 s on a 2-core machine, so the live tests share one Inductor
cache folder: the first compiles cold, the others reuse its kernels (their point is the
toolchain, not the compile time).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, needs_framework, run_envcheck

from envcheck.checks import REGISTRY, Options
from envcheck.diagnose_compile import (
    cache_noexec,
    cache_not_writable,
    no_compiler,
    not_a_compiler,
    ptxas_too_new,
    triton_problem,
)
from envcheck.model import Status
from envcheck.probes.compile_probe import toolchain
from envcheck.profiles import PROFILES
from envcheck.runner import ProbeOutcome
from envcheck.verify import verify

COMPILE_CHECKS = {c.check_id: c for c in REGISTRY if c.category == "compile"}
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ on PATH here")


def run_compile_check(framework: str, profile: str = "cpu", recorded=None):
    check = COMPILE_CHECKS[f"compile.{framework}"]
    report, ctx = verify(
        PROFILES[profile], (framework,), False, Options(), checks=[check], recorded=recorded
    )
    (result,) = report.checks
    return result, ctx


@pytest.fixture(scope="module")
def inductor_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inductor-cache")


@pytest.fixture
def compile_env(monkeypatch, inductor_cache):
    """The probe's environment: the shared cache, no CC/CXX unless a test sets them."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    return monkeypatch


def python_only_path(tmp_path: Path) -> str:
    """A PATH folder holding links to only what the probe runs: the interpreter (the runner
    starts it by its full path) and sh; no gcc, g++, clang or cc."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    return str(bin_dir)


# -- live: the real frameworks on the CPU --------------------------------------------------------
@needs_framework("torch")
@needs_gxx
def test_torch_compile_passes_with_a_compiler(compile_env):
    result, ctx = run_compile_check("torch")
    assert result.status is Status.PASS, (result.message, result.cause)
    f = result.figures
    assert f["max_rel_error"] <= f["tolerance"] == 1e-4
    assert f["cold_seconds"] > 0 and f["warm_seconds"] > 0
    assert f["eager_step_ms"] > 0 and f["compiled_step_ms"] > 0
    assert f["cxx_compiler"] == shutil.which("g++")
    assert "g++" in f["cxx_compiler_version"] or "GCC" in f["cxx_compiler_version"]
    assert "match eager" in result.message
    data = ctx.facts["torch.compile"].data
    assert data["cache"]["TORCHINDUCTOR_CACHE_DIR"]["named"] is True  # the one set, respected


@needs_framework("torch")
def test_no_compiler_on_path_fails_naming_what_was_looked_for(compile_env, tmp_path):
    compile_env.setenv("PATH", python_only_path(tmp_path))
    result, ctx = run_compile_check("torch")
    assert result.status is Status.FAIL
    assert "InvalidCxxCompiler" in result.message  # PyTorch's own words
    assert "no C++ compiler for Inductor" in result.cause
    assert "$CXX (unset), g++" in result.cause
    assert "pixi install" in result.fix and "CXX" in result.fix
    tc = ctx.facts["torch.compile"].data["toolchain"]
    assert tc["c"]["looked_for"] == ["$CC (unset)", "gcc", "clang"]


@needs_framework("torch")
@needs_gxx
@pytest.mark.parametrize("kind", ["true", "script"])
def test_cc_that_is_not_a_compiler_fails(compile_env, tmp_path, kind):
    if kind == "true":
        cc = shutil.which("true") or "/bin/true"
    else:
        script = tmp_path / "fake-cc"
        script.write_text("#!/bin/sh\necho 'fake-cc 1.0'\nexit 0\n")
        script.chmod(0o755)
        cc = str(script)
    compile_env.setenv("CC", cc)
    result, _ = run_compile_check("torch")
    assert result.status is Status.FAIL, (result.message, result.cause)
    assert result.message == f"compiled, but $CC={cc} is not a working C compiler"
    assert f"$CC={cc} is not a working C compiler" in result.cause
    assert "wrote no shared object" in result.cause
    assert "point CC at a C compiler" in result.fix


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write, root included: immutable (chattr +i) as root, else 0555."""
    folder = tmp_path / "ro-cache"
    folder.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a folder read-only as root: {done.stderr!r}")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        yield folder
        folder.chmod(0o755)


@needs_framework("torch")
def test_read_only_cache_folder_fails_naming_the_variable(compile_env, read_only_dir):
    compile_env.setenv("TORCHINDUCTOR_CACHE_DIR", str(read_only_dir))
    result, _ = run_compile_check("torch")
    assert result.status is Status.FAIL
    assert f"TORCHINDUCTOR_CACHE_DIR={read_only_dir}" in result.cause
    assert "not writable" in result.cause
    assert "TORCHINDUCTOR_CACHE_DIR" in result.fix and "TRITON_CACHE_DIR" in result.fix


@needs_framework("tensorflow")
def test_tensorflow_jit_compile_passes():
    result, _ = run_compile_check("tensorflow")
    assert result.status is Status.PASS, (result.message, result.cause)
    assert result.figures["max_rel_error"] <= result.figures["tolerance"]
    assert result.figures["compile_seconds"] >= 0
    assert "jit_compile=True" in result.message


def test_toolchain_reports_a_broken_cc_without_any_framework(tmp_path):
    data = toolchain({}, environ={"PATH": python_only_path(tmp_path), "CC": "/bin/true"})
    assert data["c"]["from_variable"] and not data["c"]["works"]
    assert data["cxx"]["path"] is None and data["cxx"]["error"] == "none found"
    assert data["triton"]["installed"] in (True, False)


def test_no_compile_leaves_the_category_out(tmp_path):
    facts = {"environment": ProbeOutcome("environment", True, data={})}
    path = tmp_path / "facts.json"
    path.write_text(
        json.dumps(
            {
                "profile": "cpu",
                "frameworks": ["torch"],
                "require_gpu": False,
                "facts": {k: v.to_dict() for k, v in facts.items()},
            }
        )
    )
    out = tmp_path / "r.json"
    with_compile = run_envcheck("verify", "--replay", str(path), "--json", str(out), timeout=120)
    ids = [c["id"] for cat in json.loads(out.read_text())["categories"] for c in cat["checks"]]
    assert "compile.torch" in ids, with_compile.stderr
    run_envcheck("verify", "--replay", str(path), "--no-compile", "--json", str(out), timeout=120)
    cats = [cat["name"] for cat in json.loads(out.read_text())["categories"]]
    assert "compile" not in cats and "imports" in cats


# -- replayed facts: the rules over recorded data ------------------------------------------------
def _toolchain(**over) -> dict:
    tc = {
        "c": {"variable": "CC", "from_variable": False, "looked_for": ["$CC (unset)", "gcc",
              "clang"], "command": "gcc", "path": "/env/bin/gcc", "works": True},
        "cxx": {"variable": "CXX", "from_variable": False, "looked_for": ["$CXX (unset)",
                "g++"], "command": "g++", "path": "/env/bin/g++", "works": True},
        "triton": {"installed": True, "version": "3.7.1", "required": "3.7.1"},
        "ptxas": {"path": "/env/bin/ptxas", "version": "release 12.9", "cuda": "12.9"},
    }  # fmt: skip
    for key, value in over.items():
        tc[key] = {**tc[key], **value} if isinstance(value, dict) else value
    return tc


def test_gpu_needs_a_c_compiler_for_triton():
    tc = _toolchain(c={"path": None, "command": None, "works": False})
    dx = no_compiler(tc, "cuda")
    assert dx and "no C compiler for Triton (looked for $CC (unset), gcc, clang" in dx.cause
    assert no_compiler(tc, "cpu") is None  # Inductor's CPU path needs C++ only
    # no facts at all (an old recording): Triton's own message
    assert no_compiler({}, "cuda", "RuntimeError: Failed to find C compiler. Please specify")


def test_a_broken_default_compiler_counts_only_where_needed():
    tc = _toolchain(c={"works": False, "error": "ld: cannot find crt1.o"})
    assert not_a_compiler(tc, "cpu") is None
    dx = not_a_compiler(tc, "cuda")
    assert dx and "gcc (/env/bin/gcc) is not a working C compiler: ld: cannot find" in dx.cause


def test_triton_missing_or_not_the_pinned_version():
    assert triton_problem(_toolchain(), "cuda12") is None
    missing = triton_problem(_toolchain(triton={"installed": False, "version": None}), "cuda12")
    assert missing and "Triton is not installed" in missing.cause
    assert "pixi install --locked -e cuda12" in missing.fix
    other = triton_problem(_toolchain(triton={"version": "3.5.1"}), "cuda12")
    assert other and "Triton 3.5.1 is installed but this PyTorch build needs Triton 3.7.1" in (
        other.cause
    )


def test_ptxas_newer_than_the_driver():
    tc = _toolchain()
    said = (
        "RuntimeError: Triton Error [CUDA]: the provided PTX was compiled with an unsupported "
        "toolchain."
    )
    dx = ptxas_too_new(said, tc["ptxas"], "13.0")
    assert dx and "unsupported toolchain" in dx.cause
    by_version = ptxas_too_new("", tc["ptxas"], "12.4")
    assert by_version and "ptxas 12.9" in by_version.cause and "CUDA 12.4" in by_version.cause
    assert "driver" in by_version.fix and "TRITON_PTXAS_PATH" in by_version.fix
    assert ptxas_too_new("", tc["ptxas"], "12.9") is None


def test_cache_rule_reads_the_folder_facts():
    cache = {
        "TRITON_CACHE_DIR": {"path": "/home/u/.triton", "error": "OSError: [Errno 30] Read-only"},
        "TORCHINDUCTOR_CACHE_DIR": {"path": "/tmp/x", "error": None},
    }
    dx = cache_not_writable(cache)
    assert dx and "TRITON_CACHE_DIR=/home/u/.triton" in dx.cause and "TORCHINDUCTOR" not in dx.cause
    assert (
        cache_not_writable({"X": {"path": "/tmp", "error": None}}, "Operation not permitted")
        is None
    )


def _recorded(compile_outcome: ProbeOutcome, cuda: bool = False) -> dict[str, ProbeOutcome]:
    facts = {"version": "2.13.0", "cuda_build": "12.9" if cuda else None,
             "cuda_available": cuda, "device_count": int(cuda), "devices": []}  # fmt: skip
    return {
        "environment": ProbeOutcome("environment", True, data={"variables": {}}),
        "nvml": ProbeOutcome("nvml", True, data={"available": cuda, "cuda_driver_version": "12.4"}),
        "torch.facts": ProbeOutcome("torch.facts", True, data=facts),
        "torch.compile": compile_outcome,
    }


def test_compile_timeout_says_how_to_give_it_time():
    hung = ProbeOutcome("t", False, failure="timeout", error="timed out after 300 s", seconds=300)
    result, _ = run_compile_check("torch", recorded=_recorded(hung))
    assert result.status is Status.FAIL
    assert "torch.compile of the test model did not finish in 300 s" in result.cause
    assert "--timeout-scale" in result.fix and "--no-compile" in result.fix


def test_gpu_compile_failure_blames_a_too_new_ptxas():
    data = {"compiled": False, "device": "cuda", "toolchain": _toolchain(), "cache": {},
            "error": "RuntimeError: Triton Error [CUDA]: the provided PTX was compiled with an "
            "unsupported toolchain."}  # fmt: skip
    result, _ = run_compile_check(
        "torch", "cuda12", recorded=_recorded(ProbeOutcome("t", True, data=data), cuda=True)
    )
    assert result.status is Status.FAIL
    assert "ptxas 12.9" in result.cause and "CUDA 12.4" in result.cause


def test_cuda11_without_triton_warns_instead_of_failing():
    data = {"compiled": False, "device": "cuda", "cache": {},
            "toolchain": _toolchain(triton={"installed": False, "version": None}),
            "error": "RuntimeError: Cannot find a working triton installation."}  # fmt: skip
    recorded = _recorded(ProbeOutcome("t", True, data=data), cuda=True)
    recorded["torch.facts"].data["cuda_build"] = "11.8"
    result, _ = run_compile_check("torch", "cuda11", recorded=recorded)
    assert result.status is Status.WARN, (result.message, result.cause)
    assert "Triton is not installed" in result.message


# -- the lock: what compile needs is in the linux envs -------------------------------------------
def test_linux_envs_with_pytorch_hold_compilers_and_cuda_builds_hold_triton():
    rattler = pytest.importorskip("rattler")
    lock = rattler.LockFile.from_path(str(REPO / "pixi.lock"))
    checked = 0
    for env_name, env in lock.environments():
        for platform in env.platforms():
            records = {
                r.name.normalized: r for r in env.conda_repodata_records_for_platform(platform)
            }
            pytorch = records.get("pytorch")
            if pytorch is None or not str(pytorch.subdir).startswith("linux-"):
                continue
            where = f"{env_name}/{platform.name}"
            assert {"gcc", "gxx"} <= set(records), f"{where}: no gcc/gxx for Inductor and Triton"
            if "cuda" in str(pytorch.build) and env_name != "cuda11":  # no Triton for PyTorch 2.0
                assert "triton" in records, f"{where}: CUDA PyTorch without Triton"
                pin = [d for d in pytorch.depends if d.startswith("triton ")]
                assert pin and str(records["triton"].version) == pin[0].split()[1], where
            checked += 1
    assert checked >= 9  # every linux env x platform with PyTorch


# -- info: the toolchain beside the frameworks ---------------------------------------------------
@needs_gxx
def test_info_shows_compilers_triton_and_ptxas(tmp_path):
    out = tmp_path / "info.json"
    proc = run_envcheck("info", "--framework", "torch", "--json", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    tc = json.loads(out.read_text())["compile.toolchain"]
    assert tc["cxx"]["path"] == shutil.which("g++") and tc["cxx"]["works"]
    for label in ("C compiler", "C++ compiler", "Triton", "ptxas"):
        assert label in proc.stdout
    assert tc["cxx"]["version"].split()[0] in proc.stdout


def test_windows_gpu_without_triton_warns_instead_of_failing():
    data = {"compiled": False, "device": "cuda", "cache": {},
            "toolchain": _toolchain(triton={"installed": False, "version": None}),
            "error": "RuntimeError: Cannot find a working triton installation."}  # fmt: skip
    recorded = _recorded(ProbeOutcome("t", True, data=data), cuda=True)
    windows = {"variables": {}, "platform": {"system": "Windows", "machine": "AMD64"}}
    recorded["environment"] = ProbeOutcome("environment", True, data=windows)
    result, _ = run_compile_check("torch", "cuda12", recorded=recorded)
    assert result.status is Status.WARN and "no Triton for Windows" in result.cause
    # the same on linux is a FAIL: the lock's linux CUDA envs carry Triton
    recorded["environment"] = ProbeOutcome("environment", True, data={"variables": {}})
    result, _ = run_compile_check("torch", "cuda12", recorded=recorded)
    assert result.status is Status.FAIL and "Triton is not installed" in result.cause


# -- an interrupted compile leaves nothing behind ------------------------------------------------
@needs_framework("torch")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes in /proc")
def test_ctrl_c_during_the_compile_removes_its_cache_folder(tmp_path):
    from test_interrupts import interrupt, start, wait_for

    tmpdir = tmp_path / "tmp"
    proc = start(["-m", "envcheck", "verify", "--framework", "torch", "--no-training"], tmpdir)
    # Inductor has begun writing its cache: the compile probe's folder is filled
    wait_for(lambda: list(tmpdir.glob("*/envcheck-compile-*/inductor/*")), 300, "the compile")
    stderr = interrupt(proc, signal.SIGINT, tmpdir)  # asserts tmpdir is empty afterwards
    assert "interrupted by SIGINT" in stderr and "Traceback" not in stderr


def test_xla_without_libdevice_is_diagnosed_in_compile_tensorflow():
    data = {"compiled": False, "device": "gpu",
            "error": "InternalError: libdevice not found at ./libdevice.10.bc"}  # fmt: skip
    recorded = {
        "environment": ProbeOutcome("environment", True, data={"variables": {}}),
        "nvml": ProbeOutcome("nvml", True, data={"available": True}),
        "tensorflow.facts": ProbeOutcome("f", True, data={"devices": [{"name": "GPU:0"}]}),
        "tensorflow.compile": ProbeOutcome("c", True, data=data),
    }
    result, _ = run_compile_check("tensorflow", "cuda12", recorded=recorded)
    assert result.status is Status.FAIL
    assert "libdevice" in result.cause and "XLA_FLAGS is unset" in result.cause
    assert "--xla_gpu_cuda_data_dir=$CONDA_PREFIX" in result.fix


def test_a_cc_with_control_characters_is_shown_printable_and_named_as_broken(tmp_path):
    cc = "no\x1b[31mpe"
    data = toolchain({}, environ={"PATH": python_only_path(tmp_path), "CC": cc})
    assert data["c"]["looked_for"] == ["$CC=no?[31mpe"]
    dx = not_a_compiler(data, "cpu")
    assert dx and "\x1b" not in dx.cause and "is not an executable" in dx.cause


def test_facts_recorded_before_the_compile_checks_replay_as_skipped():
    recorded = _recorded(ProbeOutcome("t", True, data={}))
    del recorded["torch.compile"]
    result, _ = run_compile_check("torch", recorded=recorded)
    assert result.status is Status.SKIP and "torch.compile is not in the facts" in result.message


def test_kernels_on_a_noexec_mount_are_diagnosed():
    cache = {"TORCHINDUCTOR_CACHE_DIR": {"path": "/tmp/x/inductor", "error": None}}
    error = "ImportError: /tmp/x/inductor/ab/cab.so: failed to map segment from shared object"
    dx = cache_noexec(cache, error)
    assert dx and "/tmp/x/inductor is on a file system mounted noexec" in dx.cause
    assert "exec" in dx.fix and cache_noexec(cache, "ImportError: other") is None


def test_a_cc_that_floods_or_hangs_is_bounded(tmp_path, monkeypatch):
    from envcheck.probes import compile_probe

    flood = tmp_path / "flood-cc"
    # floods its output, and leaves a child that would outlive a plain kill
    flood.write_text("#!/bin/sh\nsleep 617 &\nyes 'output output output'\n")
    flood.chmod(0o755)
    monkeypatch.setattr(compile_probe, "TOOL_TIMEOUT", 2)
    data = toolchain({}, environ={"PATH": python_only_path(tmp_path), "CC": str(flood)})
    c = data["c"]
    assert not c["works"] and c["error"] == f"{flood} did not finish in 2 s"
    assert c["version"] is None
    left = subprocess.run(["pgrep", "-f", "sleep 617"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the tool's child outlived it"
