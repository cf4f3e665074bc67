"""Fact gatherers on this machine (no GPU, no driver): real facts, no mocks."""

from __future__ import annotations

import os

from conftest import needs_no_gpu, needs_tensorflow

from envcheck.checks.registry import PROBES
from envcheck.probes import environment, nvml
from envcheck.probes.nvml_ctypes import CtypesNvml
from envcheck.runner import run_probe


@needs_no_gpu
def test_nvml_without_driver_reports_no_driver():
    facts = nvml.gather({})
    assert facts["available"] is False and facts["reason"] == "no_driver"
    assert "NVML" in facts["error"]


def test_ctypes_fallback_fails_cleanly_without_driver():
    nv = CtypesNvml()
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        assert "Not Found" in str(exc)
    else:  # a machine with a driver: the fallback must read real values
        assert nv.nvmlDeviceGetCount() >= 0
        nv.nvmlShutdown()


def test_shadowing_libraries_outside_the_prefix(tmp_path):
    outside = tmp_path / "usr-local-cuda"
    inside = tmp_path / "env" / "lib"
    for d in (outside, inside):
        d.mkdir(parents=True)
        (d / "libcudnn.so.9").write_bytes(b"")
    (outside / "libcudart.so.12").write_bytes(b"")
    (outside / "libfoo.so").write_bytes(b"")
    ld = os.pathsep.join([str(inside), str(outside)])
    found = environment.shadowing_libraries(ld, str(tmp_path / "env"))
    assert found == [{"path": str(outside), "libraries": ["libcudart.so.12", "libcudnn.so.9"]}]


def test_conda_packages_read_from_conda_meta(tmp_path):
    meta = tmp_path / "conda-meta"
    meta.mkdir()
    (meta / "pytorch-2.9.1-cuda129_mkl_py312_h1.json").write_text(
        '{"name": "pytorch", "version": "2.9.1", "build": "cuda129_mkl_py312_h1"}'
    )
    (meta / "zlib-1.3.1-hb9d3cd8_2.json").write_text(
        '{"name": "zlib", "version": "1.3.1", "build": "hb9d3cd8_2"}'
    )
    (meta / "history").write_text("")
    pkgs = environment.conda_packages(str(tmp_path))
    assert pkgs == {"pytorch": {"version": "2.9.1", "build": "cuda129_mkl_py312_h1"}}


def test_gather_reads_steering_variables():
    facts = environment.gather(
        {"CUDA_VISIBLE_DEVICES": "", "LD_LIBRARY_PATH": "", "PIXI_ENVIRONMENT_NAME": "cuda12"}
    )
    assert facts["variables"] == {"CUDA_VISIBLE_DEVICES": ""}
    assert facts["pixi_environment"] == "cuda12" and facts["conda_prefix"] is None


def test_nvml_probe_without_nvidia_ml_py_reads_through_ctypes(
    fake_nvml_dir, without_nvidia_ml_py, monkeypatch
):
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_dir))
    outcome = run_probe(PROBES["nvml"].target, {}, 60, extra_path=without_nvidia_ml_py)
    assert outcome.ok, outcome.describe_failure()
    facts = outcome.data
    assert facts["available"] is True and facts["binding"] == "ctypes"
    assert facts["driver_version"] == "580.159.04" and facts["cuda_driver_version"] == "13.0"
    (gpu,) = facts["gpus"]
    assert gpu["name"] == "NVIDIA H200" and gpu["compute_capability"] == "9.0"
    assert gpu["uuid"] == "GPU-00000000-1111-2222-3333-444444444444"
    assert gpu["memory_total_mib"] == 143771 and gpu["memory_used_mib"] == 1
    assert gpu["compute_mode"] == "default" and gpu["mig_mode"] is False
    assert gpu["processes"] == 1
    # a query the fallback does not bind reads as unknown, not as a failure
    assert gpu["retired_pages_pending"] is None


def test_nvml_ctypes_init_failure_is_no_driver_in_nvml_words(
    fake_nvml_dir, without_nvidia_ml_py, monkeypatch
):
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_dir))
    monkeypatch.setenv("FAKE_NVML_INIT_RC", "9")
    outcome = run_probe(PROBES["nvml"].target, {}, 60, extra_path=without_nvidia_ml_py)
    assert outcome.ok  # no driver is a fact, not a probe crash
    assert outcome.data == {
        "available": False,
        "reason": "no_driver",
        "binding": "ctypes",
        "error": "nvmlInit_v2: Driver Not Loaded (NVML error 9)",
    }


@needs_no_gpu
def test_nvml_probe_without_nvidia_ml_py_or_driver(without_nvidia_ml_py):
    outcome = run_probe(PROBES["nvml"].target, {}, 60, extra_path=without_nvidia_ml_py)
    assert outcome.ok
    assert outcome.data["reason"] == "no_driver" and outcome.data["binding"] == "ctypes"
    assert outcome.data["error"] == "NVML Shared Library Not Found"


def test_driver_libraries_on_ld_library_path_are_not_shadowing(tmp_path):
    driver = tmp_path / "usr-local-nvidia-lib64"  # what containers put on LD_LIBRARY_PATH
    toolkit = tmp_path / "usr-local-cuda-lib64"
    for d in (driver, toolkit):
        d.mkdir()
    for name in ("libcuda.so.1", "libcuda.so.580.159.04", "libnvidia-ml.so.1"):
        (driver / name).write_bytes(b"")
    for name in ("libcublasLt.so.13", "libcufft.so.12", "libcuda.so"):
        (toolkit / name).write_bytes(b"")
    ld = os.pathsep.join([str(driver), str(toolkit)])
    found = environment.shadowing_libraries(ld, str(tmp_path / "env"))
    assert found == [{"path": str(toolkit), "libraries": ["libcublasLt.so.13", "libcufft.so.12"]}]


@needs_tensorflow
def test_tensorflow_facts_probe_logs_library_loads_at_verbose_level_1(monkeypatch):
    """TF names a library it cannot dlopen only in a VLOG(1) line: the facts probe turns such
    lines on for itself, even under the runner's TF_CPP_MIN_LOG_LEVEL=1. Seen through another
    module's level-1 line, since a CPU build loads no GPU library."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.setenv("TF_CPP_VMODULE", "parse_flags_from_env=1")
    outcome = run_probe(PROBES["tensorflow.facts"].target, {}, 300)
    assert outcome.ok, outcome.describe_failure()
    assert "parse_flags_from_env.cc" in outcome.stderr and "For env var TF_XLA_FLAGS" in (
        outcome.stderr
    )
