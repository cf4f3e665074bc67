"""pixi.toml as the tools solve it: per environment x platform specs and virtual packages.

envcheck.lockaudit.manifest reads the manifest (the one reader the lock audit uses too); this
adapter renders what a solve needs and refuses what an offline conda solve cannot honour.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The tools run as scripts from a checkout where envcheck is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envcheck.errors import EnvcheckError  # noqa: E402
from envcheck.lockaudit.manifest import (  # noqa: E402
    DEFAULT_FEATURE,
    EnvDecl,
    Manifest,
    PlatformDecl,
    feature_tables,
    load_manifest,
    spec_string,
)
from envcheck.lockaudit.virtuals import Virtual, for_solver  # noqa: E402


class Workspace:
    """One manifest; envs and platforms as envcheck.lockaudit.manifest reads them."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.path = manifest.path
        self.platforms: dict[str, PlatformDecl] = manifest.platforms
        self.environments: dict[str, EnvDecl] = manifest.envs
        # As written in [workspace].channels: conda environment files name them this way.
        self.channels = [name for name, _ in manifest.features[DEFAULT_FEATURE].channels]

    def channel_urls(self) -> list[str]:
        return list(self.manifest.channels)

    def env_platforms(self, env: str) -> list[PlatformDecl]:
        """The platforms all of the environment's features allow, in workspace order."""
        return [ep.platform for ep in self.environments[env].platforms.values()]

    def specs(self, env: str, platform: PlatformDecl) -> list[str]:
        return self._collect(env, platform, "conda")

    def constraints(self, env: str, platform: PlatformDecl) -> list[str]:
        return self._collect(env, platform, "constraints")

    def raw_requirements(self, env: str, platform: PlatformDecl, table: str) -> dict[str, list]:
        """package -> manifest values (one per feature naming it) of `table` ("conda" or
        "constraints") on any platform, the env's own or not (probes solve others)."""
        # Default feature first: the committed environments/*.yml list its packages first.
        names = sorted(self.environments[env].features, key=lambda f: f != DEFAULT_FEATURE)
        merged: dict[str, list[Any]] = {}
        for name in names:
            tables = feature_tables(self.manifest.features[name], platform, str(self.path))
            if tables["pypi"] or tables["system"]:
                raise EnvcheckError(
                    f"feature {name!r}: pypi-dependencies and system-requirements are not "
                    "supported by tools/manifest.py"
                )
            for pkg, value in tables[table].items():
                merged.setdefault(pkg, []).append(value)
        return merged

    def _collect(self, env: str, platform: PlatformDecl, table: str) -> list[str]:
        out = []
        for pkg, values in sorted(self.raw_requirements(env, platform, table).items()):
            out += [matchspec(pkg, v) for v in values]
        return out


def load(path: Path) -> Workspace:
    workspace = Workspace(load_manifest(path))
    _check_solve_groups(workspace)
    return workspace


def matchspec(name: str, value: Any) -> str:
    """A manifest value in the bracket form the solve report records: `python[version="3.12.*"]`."""
    if isinstance(value, dict) and value.get("channel", "conda-forge") != "conda-forge":
        raise EnvcheckError(f"{name}: only conda-forge is supported, got {value['channel']!r}")
    spec = spec_string(name, {"version": value} if isinstance(value, str) else value, "pixi.toml")
    if spec is None:
        raise EnvcheckError(f"{name}: source dependencies cannot be solved offline")
    return spec


def lock_virtuals(platform: PlatformDecl) -> list[str]:
    """The lock's platform entry, e.g. `__archspec=0=x86_64`."""
    return [str(vp) for vp in platform.virtuals()]


def solve_virtuals(platform: PlatformDecl) -> list[Virtual]:
    return [for_solver(vp) for vp in platform.virtuals()]


def _check_solve_groups(ws: Workspace) -> None:
    """Solving members of a solve-group separately is only equal to pixi's joint solve when
    they share one feature set; anything else would need a joint solve, so refuse it."""
    groups: dict[str, set[tuple[str, ...]]] = {}
    for env in ws.environments.values():
        if env.solve_group:
            groups.setdefault(env.solve_group, set()).add(env.features)
    for group, feature_sets in groups.items():
        if len(feature_sets) > 1:
            raise EnvcheckError(
                f"solve-group {group!r} mixes feature sets {sorted(feature_sets)}; "
                "tools/lockgen.py only supports groups of identical environments"
            )
