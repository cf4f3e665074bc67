"""verify's environment.lock_drift check on a prefix built from the real pixi.lock."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from test_lockaudit import fake_prefix

from envcheck.checks import REGISTRY, Options
from envcheck.lockaudit.drift import current_subdir
from envcheck.model import Status
from envcheck.profiles import PROFILES, resolve_profile
from envcheck.verify import verify

on_linux_64 = pytest.mark.skipif(
    current_subdir() != "linux-64", reason="the fake prefixes hold linux-64 records"
)


def _drift_result(monkeypatch, prefix, pixi_env: str | None = "cpu", profile=None, conda_env=None):
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    monkeypatch.setenv("PIXI_PROJECT_ROOT", str(REPO))
    if conda_env:
        monkeypatch.setenv("CONDA_DEFAULT_ENV", conda_env)
    else:
        monkeypatch.delenv("CONDA_DEFAULT_ENV", raising=False)
    if pixi_env:
        monkeypatch.setenv("PIXI_ENVIRONMENT_NAME", pixi_env)
    else:
        monkeypatch.delenv("PIXI_ENVIRONMENT_NAME", raising=False)
    checks = [c for c in REGISTRY if c.check_id == "environment.lock_drift"]
    profile = profile or PROFILES["cpu"]
    report, _ = verify(profile, ("torch",), False, Options(), checks=checks)
    return report.checks[0]


def test_installed_env_matching_the_lock_passes(tmp_path, monkeypatch):
    result = _drift_result(monkeypatch, fake_prefix(tmp_path, "cpu", "linux-64"))
    assert result.status is Status.PASS, (result.message, result.cause)
    assert "match pixi.lock environment 'cpu' (the active pixi environment)" in result.message


def test_drifted_package_fails_with_reinstall_fix(tmp_path, monkeypatch):
    prefix = fake_prefix(tmp_path, "cpu", "linux-64")
    next((prefix / "conda-meta").glob("numpy-*.json")).unlink()
    result = _drift_result(monkeypatch, prefix)
    assert result.status is Status.FAIL
    assert "numpy" in result.cause and "pixi reinstall --locked -e cpu" in result.fix


@on_linux_64
def test_conda_env_from_locks_is_compared_with_the_env_the_profile_names(tmp_path, monkeypatch):
    """Issue 16.1: a conda env made from locks/ with ENVCHECK_PROFILE=cuda12, no pixi."""
    prefix = fake_prefix(tmp_path, "cuda12", "linux-64-cuda12")
    monkeypatch.setenv("ENVCHECK_PROFILE", "cuda12")
    result = _drift_result(monkeypatch, prefix, pixi_env=None, profile=resolve_profile(None))
    assert result.status is Status.PASS, (result.message, result.cause)
    assert "environment 'cuda12' (named by the profile)" in result.message

    next((prefix / "conda-meta").glob("libzlib-*.json")).unlink()
    result = _drift_result(monkeypatch, prefix, pixi_env=None, profile=resolve_profile(None))
    assert result.status is Status.FAIL
    assert result.message.startswith("1 installed package(s) differ from pixi.lock environment")
    assert "libzlib" in result.cause
    assert "micromamba create -n cuda12 -f locks/explicit/cuda12-linux-64.txt" in result.fix


@on_linux_64
def test_unnamed_conda_env_is_compared_with_the_closest_lock_env(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCHECK_PROFILE", raising=False)
    prefix = fake_prefix(tmp_path, "cuda13", "linux-64-cuda13")
    result = _drift_result(monkeypatch, prefix, pixi_env=None, profile=resolve_profile(None))
    assert result.status is Status.PASS, (result.message, result.cause)
    assert "environment 'cuda13' (the closest match by content)" in result.message


@on_linux_64
@pytest.mark.parametrize("how", ["CONDA_DEFAULT_ENV", "condabin"])
def test_conda_base_env_is_not_compared_with_the_lock(tmp_path, monkeypatch, how):
    """Issue 15: `conda init` activates base in every shell; base is no env from the lock."""
    prefix = fake_prefix(tmp_path, "cpu", "linux-64")
    if how == "condabin":
        (prefix / "condabin").mkdir()
    base = "base" if how == "CONDA_DEFAULT_ENV" else None
    result = _drift_result(monkeypatch, prefix, None, resolve_profile("cpu"), conda_env=base)
    assert result.status is Status.SKIP, (result.message, result.cause)
    assert "conda's base environment" in result.message


def test_env_not_installed_from_the_lock_is_not_compared(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCHECK_PROFILE", raising=False)
    meta = tmp_path / "prefix" / "conda-meta"
    meta.mkdir(parents=True)
    for name in ("python", "requests"):
        (meta / f"{name}-1.0-0.json").write_text(
            json.dumps({"name": name, "version": "1.0", "build": "0", "sha256": "00"})
        )
    result = _drift_result(monkeypatch, meta.parent, pixi_env=None, profile=resolve_profile(None))
    assert result.status is Status.SKIP, (result.message, result.cause)
    assert "was not installed from pixi.lock (the closest environment" in result.message
