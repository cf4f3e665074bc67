"""verify's environment.lock_drift check on a prefix built from the real pixi.lock."""

from __future__ import annotations

from conftest import REPO
from test_lockaudit import fake_prefix

from envcheck.checks import REGISTRY, Options
from envcheck.model import Status
from envcheck.profiles import PROFILES
from envcheck.verify import verify


def _drift_result(monkeypatch, prefix):
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    monkeypatch.setenv("PIXI_ENVIRONMENT_NAME", "cpu")
    monkeypatch.setenv("PIXI_PROJECT_ROOT", str(REPO))
    checks = [c for c in REGISTRY if c.check_id == "environment.lock_drift"]
    report, _ = verify(PROFILES["cpu"], ("torch",), False, Options(), checks=checks)
    return report.checks[0]


def test_installed_env_matching_the_lock_passes(tmp_path, monkeypatch):
    result = _drift_result(monkeypatch, fake_prefix(tmp_path, "cpu", "linux-64"))
    assert result.status is Status.PASS, (result.message, result.cause)
    assert "match pixi.lock (cpu)" in result.message


def test_drifted_package_fails_with_reinstall_fix(tmp_path, monkeypatch):
    prefix = fake_prefix(tmp_path, "cpu", "linux-64")
    next((prefix / "conda-meta").glob("numpy-*.json")).unlink()
    result = _drift_result(monkeypatch, prefix)
    assert result.status is Status.FAIL
    assert "numpy" in result.cause and "pixi reinstall -e cpu" in result.fix
