"""A lock real pixi wrote passes the checks that must hold for any lock.

Whoever wrote pixi.lock, `envcheck lock` (satisfiability + policy) and the derived files
(`tools/derive.py --check`) must hold; the re-solve from the record snapshot applies only to
a lock tools/lockgen.py wrote (tests/pixi_written.py says how that is recorded). The locks
here are the committed one in the shapes pixi writes: no purls or run_exports (pixi >= 0.78),
plus p1, p2, ... platform names (pixi 0.71-0.77), or platform entries that carry only their
customised virtual packages and an explicit subdir.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pixi_written import (
    REPORT,
    customised_platform_entries,
    pixi_aliases,
    rename_platforms,
    resolve_skip_reason,
    sha256_text,
    strip_pixi_omits,
)

from envcheck.lockaudit.manifest import load_manifest
from envcheck.lockaudit.virtuals import default_virtuals

rattler = pytest.importorskip("rattler")

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "pixi.toml"
LOCK = REPO / "pixi.lock"
sys.path.insert(0, str(REPO / "tools"))

import derive  # noqa: E402
import manifest as mf  # noqa: E402

SHAPES = ("pixi>=0.78", "pixi 0.71-0.77 (p1, p2, ...)", "customised platform entries")


def pixi_shaped(shape: str) -> str:
    text = strip_pixi_omits(LOCK.read_text(encoding="utf-8"))
    if shape == SHAPES[1]:
        text = rename_platforms(text, pixi_aliases(load_manifest(MANIFEST).platforms))
    elif shape == SHAPES[2]:
        text = customised_platform_entries(text, default_virtuals)
    return text


@pytest.fixture(scope="module", params=SHAPES)
def shaped(request, tmp_path_factory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp("lock") / "pixi.lock"
    path.write_text(pixi_shaped(request.param), encoding="utf-8")
    return request.param, path


def findings_of(lock: Path) -> list[dict]:
    from envcheck.lockaudit import audit

    return [f.to_dict() for f in audit(MANIFEST, lock).findings]


def test_the_shapes_are_what_pixi_writes(shaped):
    shape, path = shaped
    text = path.read_text(encoding="utf-8")
    assert "purls:" not in text and "run_exports:" not in text
    lock = rattler.LockFile.from_path(str(path))
    names = {p.name for p in lock.platforms()}
    committed = rattler.LockFile.from_path(str(LOCK))
    aliases = pixi_aliases(load_manifest(MANIFEST).platforms)
    if shape == SHAPES[1]:
        assert {"p2", "p4"} <= names and not names & set(aliases)  # cuda12 on linux-64, win-64
    else:
        assert names == {p.name for p in committed.platforms()}
    if shape == SHAPES[2]:
        cuda12 = next(p for p in lock.platforms() if p.name == "linux-64-cuda12")
        assert list(cuda12.virtual_packages) == ["__cuda=12.0"]
    # Same records, package for package: only the metadata pixi omits is gone.
    for env, environment in committed.environments():
        urls = sorted(r.url for p in environment.platforms() for r in _records(environment, p))
        other = lock.environment(env)
        assert sorted(r.url for p in other.platforms() for r in _records(other, p)) == urls


def _records(environment, platform) -> list:
    return environment.conda_repodata_records_for_platform(platform) or []


def test_envcheck_lock_accepts_a_pixi_written_lock(shaped):
    _, path = shaped
    assert findings_of(path) == findings_of(LOCK) == []


def test_derived_files_match_a_pixi_written_lock(shaped, tmp_path):
    _, path = shaped
    ws = mf.load(MANIFEST)
    derive.render_all(ws, rattler.LockFile.from_path(str(path)), tmp_path, p2cl=None)
    assert derive.compare_trees(tmp_path, REPO, with_conda_lock=False) == []


def test_a_pixi_written_lock_is_not_re_solved(shaped, tmp_path):
    _, path = shaped
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    reason = resolve_skip_reason(path, REPORT, report.get("snapshot_sha256") or "")
    assert reason is not None and "lockgen" in reason


def test_the_cli_audits_a_p_named_lock_clean(tmp_path):
    lock = tmp_path / "pixi.lock"
    lock.write_text(pixi_shaped(SHAPES[1]), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "envcheck", "lock"]
        + ["--manifest", str(MANIFEST), "--lock", str(lock)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_an_alias_that_matches_no_manifest_platform_is_still_reported(tmp_path):
    # p2 is linux-64 + __cuda=12.0; recorded as __cuda=12.4 it is no manifest platform, so it
    # keeps its alias and the cuda12 environment lacks its linux-64-cuda12 platform.
    text = pixi_shaped(SHAPES[1])
    entry = re.search(r"(?ms)^- name: p2\n.*?(?=^- name: )", text).group(0)
    lock = tmp_path / "pixi.lock"
    lock.write_text(text.replace(entry, entry.replace("__cuda=12.0", "__cuda=12.4")), "utf-8")
    messages = [f["message"] for f in findings_of(lock)]
    assert any("platform linux-64-cuda12 of environment 'cuda12' is not in" in m for m in messages)


def test_a_manifest_in_pixi_085_syntax_audits_the_same(tmp_path):
    # pixi 0.85 names a platform's conda subdir `subdir` (the old `platform` key warns); pixi
    # 0.78-0.84 reject that key, so it counts only where requires-pixi excludes them.
    text = MANIFEST.read_text(encoding="utf-8")
    new = re.sub(r'(\{ name = "[^"]+", )platform = ', r"\1subdir = ", text)
    assert new != text
    from envcheck.errors import EnvcheckError
    from envcheck.lockaudit import audit

    (tmp_path / "pixi.toml").write_text(new, encoding="utf-8")
    with pytest.raises(EnvcheckError, match="unknown key 'subdir'"):
        audit(tmp_path / "pixi.toml", LOCK)
    new = re.sub(r'requires-pixi = "[^"]*"', 'requires-pixi = ">=0.85"', new)
    (tmp_path / "pixi.toml").write_text(new, encoding="utf-8")
    assert audit(tmp_path / "pixi.toml", LOCK).findings == []


def test_the_origin_record_decides_whether_the_lock_is_re_solved(tmp_path):
    lock = tmp_path / "pixi.lock"
    lock.write_text(LOCK.read_text(encoding="utf-8"), encoding="utf-8")
    report = tmp_path / "solve-report.json"

    def reason(record: dict, snapshot: str = "s1") -> str | None:
        report.write_text(json.dumps(record), encoding="utf-8")
        return resolve_skip_reason(lock, report, snapshot)

    mine = {"lock_sha256": sha256_text(LOCK), "snapshot_sha256": "s1"}
    assert reason(mine) is None
    assert "snapshot changed" in reason(mine, snapshot="s2")
    assert "not written by tools/lockgen.py" in reason({**mine, "lock_sha256": "0" * 64})
    assert "records no lock_sha256" in reason({"snapshot_sha256": "s1"})
    lock.write_text(lock.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert "not written by tools/lockgen.py" in reason(mine)
