"""Read pixi.toml into what each environment x platform promises.

Per environment: its features, platforms (plain or named "rich" ones with declared virtual
packages), conda specs including `target.<selector>` tables, `[constraints]`, PyPI names,
channels and solve options. CUDA counts as declared whether it comes from a rich platform
(`cuda = "12.0"`, pixi >= 0.71) or from the deprecated `[system-requirements]`.

The one reader of pixi.toml: the lock audit and the offline lock tools (tools/manifest.py)
both use it. Only the semantics they need are implemented; tables this module does not know
(tasks, activation, ...) are ignored, structural errors raise EnvcheckError.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvcheckError
from ..fileio import decode_utf8, read_bounded
from ..guard import parse_text
from .platforms import PlatformDecl, parse_platform, subdir_keys, sysreq_virtual
from .virtuals import Virtual

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.9/3.10: the same parser, from PyPI
    import tomli as tomllib

DEFAULT_FEATURE = "default"
# A pixi.toml is kilobytes; anything near this is not one (or is /dev/zero).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
CONDA_FORGE_URL = "https://conda.anaconda.org/conda-forge/"

# Dependency tables merged into the solve: a workspace that builds no package solves host and
# build dependencies together with run dependencies.
_CONDA_TABLES = ("dependencies", "host-dependencies", "build-dependencies")
_SOURCE_KEYS = ("path", "git", "url")
_FAMILIES = {
    "linux": lambda s: s.startswith("linux-"),
    "osx": lambda s: s.startswith("osx-"),
    "macos": lambda s: s.startswith("osx-"),  # pixi 0.77: an alias of `osx` (target.rs)
    "win": lambda s: s.startswith("win-"),
    "unix": lambda s: not s.startswith("win-"),
}


@dataclass
class EnvPlatform:
    """What one environment promises on one platform."""

    platform: PlatformDecl
    # package name -> MatchSpec strings, one per feature that names the package
    specs: dict[str, list[str]] = field(default_factory=dict)
    constraints: dict[str, list[str]] = field(default_factory=dict)
    pypi: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)  # path/git/url deps: not audited
    declared: dict[str, Virtual] = field(default_factory=dict)

    @property
    def cuda(self) -> str | None:
        vp = self.declared.get("__cuda")
        return vp.version if vp else None

    @property
    def cuda_major(self) -> int | None:
        cuda = self.cuda
        if not cuda:
            return None
        head = cuda.split(".")[0]
        return int(head) if head.isdigit() else None


@dataclass
class EnvDecl:
    name: str
    features: tuple[str, ...]
    solve_group: str | None
    channels: list[str]  # URLs, highest priority first
    options: dict[str, str]  # solve options that differ from pixi's defaults
    platforms: dict[str, EnvPlatform]


@dataclass
class Feature:
    name: str
    platforms: list[str] | None
    channels: list[tuple[str, int]]  # (name or URL as written, priority)
    tables: dict[str, Any]  # the raw feature table (dependencies, target, ...)
    options: dict[str, str]


@dataclass
class Manifest:
    path: Path
    channels: list[str]
    platforms: dict[str, PlatformDecl]
    envs: dict[str, EnvDecl]
    features: dict[str, Feature]


def channel_url(channel: str) -> str:
    """A channel name or URL as the lock writes it (a URL with a trailing slash)."""
    if "://" in channel:
        return channel.rstrip("/") + "/"
    return f"https://conda.anaconda.org/{channel.strip('/')}/"


def selector_matches(selector: str, platform: PlatformDecl) -> bool:
    """pixi's target selector: platform name, subdir, OS family, or a glob on the name."""
    if selector in (platform.name, platform.subdir):
        return True
    if selector in _FAMILIES:
        return _FAMILIES[selector](platform.subdir)
    return "*" in selector and fnmatch.fnmatchcase(platform.name, selector)


def spec_string(name: str, value: Any, where: str) -> str | None:
    """A manifest dependency value as a MatchSpec string; None for source dependencies."""
    if isinstance(value, str):
        value = value.strip()
        return name if value in ("", "*") else f"{name} {value}"
    if not isinstance(value, dict):
        raise EnvcheckError(f"{where}: {name} = {value!r} is neither a version string nor a table")
    if any(k in value for k in _SOURCE_KEYS):
        return None
    fields = []
    # The channel is checked per environment (channels must match the lock), not per record.
    for key in ("version", "build", "build-number", "file-name", "subdir", "md5", "sha256"):
        if key in value and str(value[key]).strip() not in ("", "*"):
            fields.append(f'{key.replace("-", "_")}="{value[key]}"')
    return f"{name}[{', '.join(fields)}]" if fields else name


def load_manifest(path: str | Path) -> Manifest:
    """Parse pixi.toml; EnvcheckError (one line) when it is missing or malformed."""
    path = Path(path)
    fix = "pass the workspace's pixi.toml with --manifest PATH"
    try:
        raw = read_bounded(path, MAX_MANIFEST_BYTES, "manifest", fix)
        data = parse_text(decode_utf8(raw, path, "manifest", fix), "toml")  # nesting bounded
    except FileNotFoundError:
        raise EnvcheckError(
            f"no manifest at {path}; run from the workspace root or pass --manifest PATH"
        ) from None
    except OSError as exc:
        raise EnvcheckError(f"cannot read manifest {path}: {exc.strerror or exc}; {fix}") from None
    except tomllib.TOMLDecodeError as exc:
        raise EnvcheckError(f"malformed manifest {path}: {exc}; fix the TOML syntax") from None
    except ValueError as exc:  # the guard's bounds: nesting, NaN, huge integers
        raise EnvcheckError(f"malformed manifest {path}: {exc}; {fix}") from None
    try:
        return _build(path, data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A wrong type deep in the tables: name it instead of showing a traceback.
        raise EnvcheckError(f"malformed manifest {path}: unexpected {exc!r}") from None


def _build(path: Path, data: dict[str, Any]) -> Manifest:
    ws = data.get("workspace", data.get("project"))
    if not isinstance(ws, dict):
        raise EnvcheckError(f"malformed manifest {path}: no [workspace] table")
    where = str(path)
    platforms: dict[str, PlatformDecl] = {}
    keys = subdir_keys(ws.get("requires-pixi"))
    for entry in _list(ws.get("platforms"), f"{where}: [workspace].platforms"):
        decl = parse_platform(entry, where, keys)
        if decl.name in platforms:
            raise EnvcheckError(f"{where}: platform {decl.name!r} is declared twice")
        platforms[decl.name] = decl
    if not platforms:
        raise EnvcheckError(f"malformed manifest {path}: [workspace].platforms is empty")
    channels = _channels(ws.get("channels"), f"{where}: [workspace].channels")

    top = {k: v for k, v in data.items() if k not in ("workspace", "project", "feature")}
    features = {DEFAULT_FEATURE: _feature(DEFAULT_FEATURE, top, ws, channels, where)}
    for name, table in _dict(data.get("feature", {}), f"{where}: [feature]").items():
        features[name] = _feature(
            name, _dict(table, f"{where}: [feature.{name}]"), None, channels, where
        )
    for feature in features.values():
        for pname in feature.platforms or []:
            if pname not in platforms:
                raise EnvcheckError(
                    f"{where}: feature {feature.name!r} names unknown platform {pname!r}; "
                    f"declared: {', '.join(platforms)}"
                )

    env_tables = dict(_dict(data.get("environments", {}), f"{where}: [environments]"))
    env_tables.setdefault("default", [])  # pixi always has a default environment
    envs = {}
    for name, spec in env_tables.items():
        envs[name] = _environment(name, spec, features, platforms, where)
    return Manifest(path, [channel_url(c) for c, _ in channels], platforms, envs, features)


def _feature(
    name: str, table: dict[str, Any], ws: dict[str, Any] | None, channels: list, where: str
) -> Feature:
    own = f"{where}: [feature.{name}]" if ws is None else f"{where}: top-level"
    plats = table.get("platforms")
    # A feature without `channels` uses the workspace's (pixi does the same), which matters
    # for an environment with no-default-feature.
    own_chans = None if ws is not None else table.get("channels")
    chans = channels if own_chans is None else _channels(own_chans, own)
    options = {}
    src = ws if ws is not None else table
    for key in ("channel-priority", "solve-strategy", "exclude-newer"):
        if key in src:
            options[key] = str(src[key])
    return Feature(
        name=name,
        platforms=None if plats is None else [str(p) for p in _list(plats, own + ".platforms")],
        channels=chans,
        tables=table,
        options=options,
    )


def _environment(
    name: str,
    spec: Any,
    features: dict[str, Feature],
    platforms: dict[str, PlatformDecl],
    where: str,
) -> EnvDecl:
    if isinstance(spec, list):
        spec = {"features": spec}
    spec = _dict(spec, f"{where}: [environments].{name}")
    listed = [str(f) for f in _list(spec.get("features", []), f"{where}: environment {name}")]
    for fname in listed:
        if fname not in features:
            raise EnvcheckError(f"{where}: environment {name!r} names unknown feature {fname!r}")
    # pixi orders an environment's features as listed, the default feature last.
    names = listed + ([] if spec.get("no-default-feature", False) else [DEFAULT_FEATURE])
    feats = [features[f] for f in names]

    allowed = set(platforms)
    for feat in feats:
        if feat.platforms is not None:
            allowed &= set(feat.platforms)
    env_plats = {}
    for pname, decl in platforms.items():
        if pname in allowed:
            env_plats[pname] = _env_platform(decl, feats, where)

    options: dict[str, str] = {}
    for feat in reversed(feats):  # earlier features win, as for channels
        options.update(feat.options)
    return EnvDecl(
        name=name,
        features=tuple(names),
        solve_group=spec.get("solve-group"),
        channels=_env_channels(feats),
        options=options,
        platforms=env_plats,
    )


def _env_channels(feats: list[Feature]) -> list[str]:
    seen: dict[str, int] = {}
    for feat in feats:
        for chan, prio in feat.channels:
            url = channel_url(chan)
            if url not in seen:
                seen[url] = prio
    # Higher priority first; equal priority keeps feature order (sorted() is stable).
    return sorted(seen, key=lambda url: -seen[url])


def _env_platform(decl: PlatformDecl, feats: list[Feature], where: str) -> EnvPlatform:
    ep = EnvPlatform(decl)
    for vp in decl.declared:
        ep.declared[vp.name] = vp
    for feat in feats:
        tables = feature_tables(feat, decl, where)
        for pkg, value in tables["conda"].items():
            spec = spec_string(pkg, value, f"{where}: [feature.{feat.name}]")
            if spec is None:
                ep.source.append(pkg)
            else:
                ep.specs.setdefault(pkg, []).append(spec)
        for pkg, value in tables["constraints"].items():
            spec = spec_string(pkg, value, f"{where}: [feature.{feat.name}.constraints]")
            if spec is not None:
                ep.constraints.setdefault(pkg, []).append(spec)
        ep.pypi += [p for p in tables["pypi"] if p not in ep.pypi]
        # [system-requirements]: the deprecated way to declare virtual packages.
        for key, value in tables["system"].items():
            vp = sysreq_virtual(key, value, f"{where}: [feature.{feat.name}]")
            if not _applies(vp.name, decl.subdir) or vp.name in ep.declared:
                continue
            ep.declared[vp.name] = vp
    return ep


def _applies(vp_name: str, subdir: str) -> bool:
    """[system-requirements] are workspace-wide; each only means something on some OSes."""
    if vp_name in ("__glibc", "__linux"):
        return subdir.startswith("linux-")
    if vp_name == "__osx":
        return subdir.startswith("osx-")
    if vp_name == "__win":
        return subdir.startswith("win-")
    if vp_name == "__cuda":
        return not subdir.startswith("osx-")
    return True


def feature_tables(feat: Feature, decl: PlatformDecl, where: str) -> dict[str, dict[str, Any]]:
    """One feature's tables on any platform ("conda", "constraints", "pypi", "system"):
    target tables override the base, key by key."""
    own = f"{where}: [feature.{feat.name}]"
    layers = [feat.tables]
    targets = _dict(feat.tables.get("target", {}), own + ".target")
    for selector, table in targets.items():
        if selector_matches(selector, decl):
            layers.append(_dict(table, f"{own}.target.{selector}"))
    out: dict[str, dict[str, Any]] = {"conda": {}, "constraints": {}, "pypi": {}, "system": {}}
    for layer in layers:
        for tname in _CONDA_TABLES:
            out["conda"].update(_dict(layer.get(tname, {}), f"{own}.{tname}"))
        out["constraints"].update(_dict(layer.get("constraints", {}), f"{own}.constraints"))
        out["pypi"].update(_dict(layer.get("pypi-dependencies", {}), f"{own}.pypi-dependencies"))
        sysreq = layer.get("system-requirements", {})
        out["system"].update(_dict(sysreq, f"{own}.system-requirements"))
    return out


def _channels(value: Any, where: str) -> list[tuple[str, int]]:
    out = []
    for entry in _list(value if value is not None else [], where):
        if isinstance(entry, dict) and "channel" in entry:
            out.append((str(entry["channel"]), int(entry.get("priority", 0))))
        elif isinstance(entry, str):
            out.append((entry, 0))
        else:
            raise EnvcheckError(f"{where}: channel entry {entry!r} is not a name or table")
    return out


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EnvcheckError(f"malformed manifest {where}: expected a table, got {value!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise EnvcheckError(f"malformed manifest {where}: expected an array, got {value!r}")
    return value
