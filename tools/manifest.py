"""Read pixi.toml into what a solve needs: per environment x platform specs and virtual packages.

Implements the subset of pixi's manifest semantics this workspace uses: named ("rich")
platforms with declared virtual packages, features with `platforms`, `dependencies`,
`constraints` and `target.<selector>` tables, and `[environments]` (including solve-groups
whose members share one feature set). Anything else is rejected loudly rather than guessed.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_FEATURE = "default"
CONDA_FORGE_URL = "https://conda.anaconda.org/conda-forge/"

# pixi's defaults per subdir (what a bare "linux-64" entry declares), in the order pixi writes
# them into a v7 lock. pixi writes __archspec with version 0; solving needs version 1 (see
# SOLVE_ARCHSPEC_VERSION).
_ARCH = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "osx-arm64": "m1",
    "osx-64": "x86_64",
    "win-64": "x86_64",
}
SOLVE_ARCHSPEC_VERSION = "1"

# Friendly manifest keys -> conda virtual package names.
_FRIENDLY_KEYS = {
    "cuda": "__cuda",
    "glibc": "__glibc",
    "libc": "__glibc",
    "linux": "__linux",
    "macos": "__osx",
    "osx": "__osx",
    "windows": "__win",
    "archspec": "__archspec",
}

_FAMILY_SELECTORS = {
    "linux": lambda s: s.startswith("linux-"),
    "osx": lambda s: s.startswith("osx-"),
    "win": lambda s: s.startswith("win-"),
    "unix": lambda s: not s.startswith("win-"),
}


class ManifestError(Exception):
    """pixi.toml uses something this reader does not implement, or is inconsistent."""


@dataclass(frozen=True)
class VirtualPackage:
    name: str
    version: str
    build: str = ""

    def lock_string(self) -> str:
        # pixi/rattler write `__name=version` or `__name=version=build`.
        return f"{self.name}={self.version}" + (f"={self.build}" if self.build else "")


@dataclass(frozen=True)
class Platform:
    """One `[workspace].platforms` entry."""

    name: str
    subdir: str
    declared: tuple[VirtualPackage, ...]  # user-declared (non-default) virtual packages

    @property
    def is_rich(self) -> bool:
        return self.name != self.subdir or bool(self.declared)

    def _defaults(self, archspec_version: str) -> list[VirtualPackage]:
        s = self.subdir
        out: list[VirtualPackage] = []
        if not s.startswith("win-"):
            out.append(VirtualPackage("__unix", "0", "0"))
        if s.startswith("linux-"):
            out += [VirtualPackage("__linux", "4.18"), VirtualPackage("__glibc", "2.28")]
        if s.startswith("win-"):
            out.append(VirtualPackage("__win", "10.0"))
        if s.startswith("osx-"):
            out.append(VirtualPackage("__osx", "13.0"))
        if s in _ARCH:
            out.append(VirtualPackage("__archspec", archspec_version, _ARCH[s]))
        return out

    def _merged(self, archspec_version: str) -> list[VirtualPackage]:
        declared_names = {vp.name for vp in self.declared}
        defaults = [vp for vp in self._defaults(archspec_version) if vp.name not in declared_names]
        return list(self.declared) + defaults

    def lock_virtual_packages(self) -> list[str]:
        """What pixi writes in the lock's platform entry (declared first, then defaults)."""
        return [vp.lock_string() for vp in self._merged("0")]

    def solve_virtual_packages(self) -> list[VirtualPackage]:
        """What the solver is given: the same set, with __archspec version 1."""
        return self._merged(SOLVE_ARCHSPEC_VERSION)


@dataclass
class Feature:
    name: str
    platforms: list[str] | None
    dependencies: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Environment:
    name: str
    features: tuple[str, ...]  # in manifest order, default feature first when included
    solve_group: str | None


@dataclass
class Workspace:
    path: Path
    name: str
    channels: list[str]
    channel_priority: str
    solve_strategy: str
    platforms: dict[str, Platform]
    features: dict[str, Feature]
    environments: dict[str, Environment]

    # -- per environment ------------------------------------------------------------------
    def env_platforms(self, env: str) -> list[Platform]:
        """Intersection of the features' platforms, in workspace order."""
        allowed = set(self.platforms)
        for feature_name in self.environments[env].features:
            feature = self.features[feature_name]
            if feature.platforms is not None:
                allowed &= set(feature.platforms)
        return [p for name, p in self.platforms.items() if name in allowed]

    def specs(self, env: str, platform: Platform) -> list[str]:
        return self._collect(env, platform, "dependencies")

    def constraints(self, env: str, platform: Platform) -> list[str]:
        return self._collect(env, platform, "constraints")

    def raw_requirements(self, env: str, platform: Platform, table: str) -> dict[str, list[Any]]:
        """package name -> manifest values (one per feature that names it), for checks."""
        merged: dict[str, list[Any]] = {}
        for feature_name in self.environments[env].features:
            for pkg, value in self._feature_table(feature_name, platform, table).items():
                merged.setdefault(pkg, []).append(value)
        return merged

    def channel_urls(self) -> list[str]:
        return [channel_url(c) for c in self.channels]

    def _collect(self, env: str, platform: Platform, table: str) -> list[str]:
        out = []
        for pkg, values in sorted(self.raw_requirements(env, platform, table).items()):
            out += [matchspec(pkg, v) for v in values]
        return out

    def _feature_table(self, feature_name: str, platform: Platform, table: str) -> dict[str, Any]:
        feature = self.features[feature_name]
        merged = dict(getattr(feature, table))
        # Later selectors win, as in pixi; manifest order is kept by tomllib.
        for selector, target in feature.targets.items():
            if selector_matches(selector, platform):
                merged.update(target.get(table, {}))
        return merged


def selector_matches(selector: str, platform: Platform) -> bool:
    """pixi's TargetSelector: platform name, subdir, OS family, or a `*` glob on the name."""
    if selector in (platform.name, platform.subdir):
        return True
    if selector in _FAMILY_SELECTORS:
        return _FAMILY_SELECTORS[selector](platform.subdir)
    if "*" in selector:
        return fnmatch.fnmatchcase(platform.name, selector)
    return False


def channel_url(channel: str) -> str:
    if channel.startswith(("http://", "https://")):
        return channel.rstrip("/") + "/"
    if channel == "conda-forge":
        return CONDA_FORGE_URL
    return f"https://conda.anaconda.org/{channel}/"


def matchspec(name: str, value: Any) -> str:
    """A manifest dependency value as a conda MatchSpec string."""
    if isinstance(value, str):
        value = {"version": value}
    if not isinstance(value, dict):
        raise ManifestError(f"{name}: unsupported dependency value {value!r}")
    unknown = set(value) - {"version", "build", "channel"}
    if unknown:
        raise ManifestError(f"{name}: unsupported keys {sorted(unknown)}")
    parts = []
    version = value.get("version", "*")
    if version != "*":
        parts.append(f'version="{version}"')
    if "build" in value:
        parts.append(f'build="{value["build"]}"')
    if "channel" in value and value["channel"] != "conda-forge":
        raise ManifestError(f"{name}: only conda-forge is supported, got {value['channel']!r}")
    return f"{name}[{', '.join(parts)}]" if parts else name


def _parse_platform(entry: Any) -> Platform:
    if isinstance(entry, str):
        return Platform(entry, entry, ())
    if not isinstance(entry, dict) or "platform" not in entry:
        raise ManifestError(f"unsupported platform entry {entry!r}")
    subdir = entry["platform"]
    declared = []
    for key, value in entry.items():
        if key in ("name", "platform"):
            continue
        if key == "cuda" and isinstance(value, dict):
            raise ManifestError("cuda = { driver, arch } is not supported by tools/manifest.py")
        vp_name = _FRIENDLY_KEYS.get(key, key if key.startswith("__") else None)
        if vp_name is None:
            raise ManifestError(f"platform {entry!r}: unknown key {key!r}")
        if vp_name == "__archspec":
            declared.append(VirtualPackage(vp_name, "0", str(value)))
        else:
            declared.append(VirtualPackage(vp_name, str(value)))
    name = entry.get("name")
    if name is None:
        suffix = "-".join(f"{vp.name.strip('_')}-{vp.version.replace('.', '-')}" for vp in declared)
        name = f"{subdir}-{suffix}" if suffix else subdir
    return Platform(name, subdir, tuple(declared))


def _parse_feature(name: str, table: dict[str, Any]) -> Feature:
    supported = {"platforms", "dependencies", "constraints", "target", "tasks", "activation"}
    unknown = set(table) - supported
    if unknown:
        raise ManifestError(f"feature {name!r}: unsupported tables {sorted(unknown)}")
    return Feature(
        name=name,
        platforms=table.get("platforms"),
        dependencies=dict(table.get("dependencies", {})),
        constraints=dict(table.get("constraints", {})),
        targets=dict(table.get("target", {})),
    )


def load(path: Path) -> Workspace:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    ws = data.get("workspace")
    if ws is None:
        raise ManifestError("pixi.toml has no [workspace] table")
    platforms = {}
    for entry in ws["platforms"]:
        platform = _parse_platform(entry)
        if platform.name in platforms:
            raise ManifestError(f"duplicate platform name {platform.name!r}")
        platforms[platform.name] = platform

    top_level = {
        k: v
        for k, v in data.items()
        if k in ("dependencies", "constraints", "target", "tasks", "activation")
    }
    features = {DEFAULT_FEATURE: _parse_feature(DEFAULT_FEATURE, top_level)}
    for name, table in data.get("feature", {}).items():
        features[name] = _parse_feature(name, table)
    for feature in features.values():
        for pname in feature.platforms or []:
            if pname not in platforms:
                raise ManifestError(f"feature {feature.name!r} names unknown platform {pname!r}")

    environments = {}
    env_tables = dict(data.get("environments", {}))
    env_tables.setdefault("default", {"features": []})
    for name, spec in env_tables.items():
        if isinstance(spec, list):
            spec = {"features": spec}
        names = list(spec.get("features", []))
        if not spec.get("no-default-feature", False):
            names.insert(0, DEFAULT_FEATURE)
        for feature_name in names:
            if feature_name not in features:
                raise ManifestError(f"environment {name!r} names unknown feature {feature_name!r}")
        environments[name] = Environment(name, tuple(names), spec.get("solve-group"))

    workspace = Workspace(
        path=Path(path),
        name=ws.get("name", Path(path).parent.name),
        channels=list(ws["channels"]),
        channel_priority=ws.get("channel-priority", "strict"),
        solve_strategy=ws.get("solve-strategy", "highest"),
        platforms=platforms,
        features=features,
        environments=environments,
    )
    _check_solve_groups(workspace)
    return workspace


def _check_solve_groups(ws: Workspace) -> None:
    """Solving members of a solve-group separately is only equal to pixi's joint solve when
    they share one feature set; anything else would need a joint solve, so refuse it."""
    groups: dict[str, set[tuple[str, ...]]] = {}
    for env in ws.environments.values():
        if env.solve_group:
            groups.setdefault(env.solve_group, set()).add(env.features)
    for group, feature_sets in groups.items():
        if len(feature_sets) > 1:
            raise ManifestError(
                f"solve-group {group!r} mixes feature sets {sorted(feature_sets)}; "
                "tools/lockgen.py only supports groups of identical environments"
            )
