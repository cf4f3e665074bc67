"""Who wrote pixi.lock, and locks shaped the way real pixi writes them, made from the committed one.

tools/lockgen.py records the sha256 of the lock it wrote (and of the snapshot it solved from)
in locks/solve-report.json; a pixi.lock with another hash came from `pixi lock`/`pixi update`
(or a hand edit), and a re-solve from the snapshot is not expected to reproduce it.

Real pixi writes the same records as lockgen minus `purls` (conda-only envs) and `run_exports`;
pixi 0.71-0.77 also write named platforms as p1, p2, ... (numbered in the manifest's order of
named platforms; pixi_core/src/lock_file/platform_rename.rs). The text edits below turn the
committed lock into those shapes without re-serialising it, so nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "locks" / "solve-report.json"


def sha256_text(path: Path) -> str:
    # Text, not bytes: a checkout with CRLF line ends holds the same lock.
    return hashlib.sha256(path.read_text(encoding="utf-8").encode("utf-8")).hexdigest()


def resolve_skip_reason(lock: Path, report: Path, snapshot_hash: str) -> str | None:
    """Why a re-solve from the snapshot is not expected to reproduce `lock` (None: it is)."""
    try:
        recorded = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{report} cannot be read ({exc}); run `python tools/lockgen.py --report {report}`"
    if not recorded.get("lock_sha256"):
        return (
            f"{report.name} records no lock_sha256: it predates lock origin records; run "
            "`python tools/lockgen.py --report locks/solve-report.json`"
        )
    if recorded["lock_sha256"] != sha256_text(lock):
        return (
            f"{lock.name} was not written by tools/lockgen.py (its sha256 is not the one "
            f"{report.name} records; pixi wrote or someone edited it): only `envcheck lock` "
            "and `tools/derive.py --check` apply to it"
        )
    if recorded.get("snapshot_sha256") != snapshot_hash:
        return (
            "the conda-forge record snapshot changed since tools/lockgen.py solved pixi.lock: "
            "re-lock with `python tools/lockgen.py --report locks/solve-report.json`"
        )
    return None


def pixi_aliases(platforms: dict) -> dict[str, str]:
    """manifest platform name -> the alias pixi 0.71-0.77 write (named platforms only)."""
    named = [p for p in platforms.values() if p.rich and (p.name != p.subdir or p.declared)]
    return {p.name: f"p{i}" for i, p in enumerate(named, start=1)}


def strip_pixi_omits(text: str) -> str:
    """Drop every package's `purls` and `run_exports` (pixi does not write them here)."""
    out: list[str] = []
    skipping: str | None = None  # the prefix of the lines that continue a dropped key
    for line in text.splitlines(keepends=True):
        if skipping is not None and line.startswith(skipping):
            continue
        skipping = None
        if line.startswith("  purls:"):
            skipping = "  - "  # purls items sit at the key's indent
            continue
        if line.startswith("  run_exports:"):
            skipping = "    "  # weak:/strong: maps one level deeper
            continue
        out.append(line)
    return "".join(out)


def rename_platforms(text: str, aliases: dict[str, str]) -> str:
    """Rename platforms in the `platforms:` list and the environments' `packages:` keys."""
    head, sep, packages = text.partition("\npackages:\n")
    for name, alias in aliases.items():
        head = re.sub(rf"(?m)^- name: {re.escape(name)}$", f"- name: {alias}", head)
        head = re.sub(rf"(?m)^      {re.escape(name)}:$", f"      {alias}:", head)
    return head + sep + packages


def customised_platform_entries(text: str, default_virtuals) -> str:
    """Platform entries with an explicit `subdir:` and only their non-default virtual
    packages: a shape rattler_lock reads and pixi's identity matching expects."""
    head, sep, rest = text.partition("\nenvironments:\n")
    entries = re.split(r"(?m)^(?=- name: )", head)
    out = [entries[0]]
    for entry in entries[1:]:
        lines = entry.splitlines()
        name = lines[0].split(": ", 1)[1]
        subdir = next((ln.split(": ", 1)[1] for ln in lines if ln.startswith("  subdir:")), name)
        vps = [ln[4:] for ln in lines if ln.startswith("  - ")]
        defaults = {str(v) for v in default_virtuals(subdir)}
        custom = [v for v in vps if v not in defaults]
        block = [f"- name: {name}", f"  subdir: {subdir}"]
        if custom:
            block += ["  virtual-packages:"] + [f"  - {v}" for v in custom]
        out.append("\n".join(block) + "\n")
    return "".join(out).rstrip("\n") + sep + rest
