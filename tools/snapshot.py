"""Solve against a local conda channel directory (the conda-forge snapshot) with py-rattler.

Records keep their channel identity (conda-forge), so solved records carry the real
https://conda.anaconda.org/conda-forge/<subdir>/<file> URLs and sha256 hashes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

from manifest import Virtual
from rattler import (
    BuildString,
    Channel,
    ChannelPriority,
    GenericVirtualPackage,
    MatchSpec,
    PackageName,
    RepoDataRecord,
    SparseRepoData,
    Version,
    VersionSpec,
    solve_with_sparse_repodata,
)

CHANNEL_NAME = "conda-forge"


class SolveFailed(Exception):
    """The solver found no solution; the message is rattler's explanation."""


@dataclass(frozen=True)
class MissingRecord:
    """A record the snapshot would need for a solve to succeed."""

    name: str
    version: str
    build: str
    subdir: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "subdir": self.subdir,
            "reason": self.reason,
        }


class Snapshot:
    def __init__(self, channel_dir: Path) -> None:
        self.channel_dir = Path(channel_dir)
        self._channel = Channel(CHANNEL_NAME)
        self._repos: dict[str, SparseRepoData] = {}
        self._broken: list[str] | None = None

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        # Closing explicitly matters: py-rattler 0.28 can segfault when SparseRepoData
        # objects are torn down during interpreter shutdown.
        for repo in self._repos.values():
            repo.close()
        self._repos.clear()

    def repodata(self, subdir: str) -> list[SparseRepoData]:
        out = []
        for s in (subdir, "noarch"):
            if s not in self._repos:
                path = self.channel_dir / s / "repodata.json"
                if not path.is_file():
                    raise FileNotFoundError(f"no repodata for {s!r} under {self.channel_dir}")
                self._repos[s] = SparseRepoData(self._channel, s, path)
            out.append(self._repos[s])
        return out

    def solve(
        self,
        subdir: str,
        specs: list[str],
        constraints: list[str],
        virtual_packages: list[Virtual],
    ) -> list[RepoDataRecord]:
        vps = [
            GenericVirtualPackage(
                PackageName(vp.name), Version(vp.version), BuildString(vp.build or "0")
            )
            for vp in virtual_packages
        ]
        try:
            records = asyncio.run(
                solve_with_sparse_repodata(
                    [MatchSpec(s) for s in specs],
                    self.repodata(subdir),
                    virtual_packages=vps,
                    constraints=[MatchSpec(c) for c in constraints],
                    channel_priority=ChannelPriority.Strict,
                    strategy="highest",
                )
            )
        except Exception as exc:  # rattler raises SolverError with the explanation
            raise SolveFailed(str(exc)) from exc
        return sorted(records, key=lambda r: r.url)

    def matching(self, subdir: str, spec: str) -> list[RepoDataRecord]:
        """Every record in subdir/noarch that matches a spec (ignoring its dependencies)."""
        ms = MatchSpec(spec)
        found = []
        for repo in self.repodata(subdir):
            found += [r for r in repo.load_records(ms.name.as_package_name()) if ms.matches(r)]
        return found

    def broken_files(self, subdir: str, spec: MatchSpec) -> list[str]:
        """`subdir/file` entries of `name` that conda-forge marked broken (and that were
        therefore removed from this snapshot)."""
        if self._broken is None:
            path = self.channel_dir / "broken.json"
            data = json.loads(path.read_text()) if path.is_file() else {}
            self._broken = sorted(data.get("broken", []))
        out = []
        for entry in self._broken:
            entry_subdir, _, file_name = entry.partition("/")
            stem = file_name.removesuffix(".conda").removesuffix(".tar.bz2")
            parts = stem.rsplit("-", 2)
            if entry_subdir not in (subdir, "noarch") or len(parts) != 3:
                continue
            name, version, build = parts
            version_ok = spec.version is None or VersionSpec(spec.version).matches(Version(version))
            if (
                name == spec.name.normalized
                and version_ok
                and fnmatch.fnmatchcase(build, str(spec.build) if spec.build else "*")
            ):
                out.append(entry)
        return out

    def missing_after_failure(
        self, subdir: str, specs: list[str], solver_message: str
    ) -> list[MissingRecord]:
        """Direct specs with no record at all, else the requirements the solver found no
        candidates for (from its explanation), each with the package that needs it."""
        return self.missing_for(subdir, specs) or missing_from_message(solver_message, subdir)

    def missing_for(self, subdir: str, specs: list[str]) -> list[MissingRecord]:
        """Direct specs that no record in the snapshot matches at all."""
        missing = []
        for spec in specs:
            if self.matching(subdir, spec):
                continue
            ms = MatchSpec(spec)
            name = ms.name.normalized
            build = str(ms.build) if ms.build else "*"
            broken = self.broken_files(subdir, ms)
            reason = "no record matches in the snapshot"
            if broken:
                reason += "; conda-forge marked these broken: " + ", ".join(broken)
            missing.append(MissingRecord(name, str(ms.version or "*"), build, subdir, reason))
        return missing


_NO_CANDIDATES = ", for which no candidates were found"
_TREE_CHARS = "│├└─ "


def missing_from_message(message: str, subdir: str) -> list[MissingRecord]:
    """Parse rattler's explanation tree for leaves with no candidates. Virtual packages
    (`__win`, `__osx`, ...) are skipped: their absence is the platform, not the snapshot."""
    lines = message.splitlines()
    found: dict[tuple[str, str], MissingRecord] = {}
    for i, line in enumerate(lines):
        if _NO_CANDIDATES not in line:
            continue
        requirement = line.split(_NO_CANDIDATES)[0].lstrip(_TREE_CHARS)
        name, _, version = requirement.partition(" ")
        if name.startswith("__"):
            continue
        parent = _parent_package(lines, i)
        key = (name, version or "*")
        if key not in found:
            found[key] = MissingRecord(
                name,
                version or "*",
                "*",
                subdir,
                f"no candidates in the snapshot (required by {parent})",
            )
    return list(found.values())


def _parent_package(lines: list[str], index: int) -> str:
    """The nearest `<pkg> <versions> would require` line above, with less indentation."""
    depth = len(lines[index]) - len(lines[index].lstrip(_TREE_CHARS))
    for line in reversed(lines[:index]):
        line_depth = len(line) - len(line.lstrip(_TREE_CHARS))
        if line_depth < depth and line.rstrip().endswith(" would require"):
            return line.lstrip(_TREE_CHARS).rsplit(" would require", 1)[0]
    return "the requested specs"
