"""Fact gatherers on this machine (no GPU, no driver): real facts, no mocks."""

from __future__ import annotations

import os

from envcheck.probes import environment, nvml
from envcheck.probes.nvml_ctypes import CtypesNvml


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
