"""`[workspace].platforms` entries and `[system-requirements]`, read the way pixi 0.77 reads them.

Sources (prefix-dev/pixi v0.77.0): crates/pixi_manifest/src/toml/platform.rs (the named-platform
table), crates/pixi_manifest/src/platform.rs (names, subdir defaults) and
crates/pixi_manifest/src/toml/system_requirements.rs. pixi rejects any key it does not know
(`TableHelper::finalize`), so this reader does too: a manifest pixi cannot load must not pass
the lock audit.

The one exception is `subdir`: pixi 0.85 renames a platform's `platform` key to `subdir` (its
release notes; the old key still works with a warning). pixi 0.77 rejects `subdir` (source) and
0.85's notes introduce it as new, so pixi < 0.85 is taken not to know it: it is accepted only
when the manifest's `requires-pixi` already excludes every pixi < 0.85.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import EnvcheckError
from .virtuals import Virtual, default_virtuals, is_subdir_default

# The conda subdirs pixi accepts as a platform (TomlPlatform, plus rattler's noarch).
SUBDIRS = frozenset(
    "linux-32 linux-64 linux-aarch64 linux-armv6l linux-armv7l linux-ppc64le linux-ppc64 "
    "linux-s390x linux-riscv32 linux-riscv64 osx-64 osx-arm64 win-32 win-64 win-arm64 "
    "emscripten-wasm32 wasi-wasm32 zos-z noarch".split()
)
# Friendly keys of a named-platform table, in pixi's canonical order (FRIENDLY_VIRTUAL_PACKAGES:
# the order a derived name lists them in). `osx` is an alias of `macos`.
_FRIENDLY = {
    "cuda": "__cuda",
    "archspec": "__archspec",
    "glibc": "__glibc",
    "linux": "__linux",
    "macos": "__osx",
    "windows": "__win",
}
_ALIASES = {"osx": "macos"}
# Keys pixi 0.77 rejects that people reach for, and what to write instead.
_HINTS = {
    "libc": 'write `glibc = "2.28"` (`libc` is a [system-requirements] key, not a platform key)',
    "win": 'write `windows = "10.0"`',
    "version": "name the virtual package: `cuda`, `glibc`, `linux`, `macos` or `windows`",
}
# [system-requirements] keys (deprecated since pixi 0.71, still read).
_SYSREQ = {"macos": "__osx", "linux": "__linux", "cuda": "__cuda", "archspec": "__archspec"}
# Names a platform may not take: they are target-selector families (PixiPlatformName).
_RESERVED = frozenset({"linux", "unix", "win", "osx", "macos"})
_NAME_RE = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_MAX_NAME = 64
_VERSION_RE = re.compile(r"^[A-Za-z0-9_.*+!-]+$")
SUBDIR_KEY_SINCE = (0, 85)


@dataclass(frozen=True)
class PlatformDecl:
    """One `[workspace].platforms` entry; `rich` when it is a named table."""

    name: str
    subdir: str
    declared: tuple[Virtual, ...] = ()
    rich: bool = False

    def virtuals(self) -> list[Virtual]:
        """The lock entry's virtual packages: the declared ones, then the defaults they leave
        (pixi's merge_subdir_defaults: a declared __musl/__eglibc replaces __glibc)."""
        names = {vp.name for vp in self.declared}
        if names & {"__musl", "__eglibc"}:
            names.add("__glibc")
        defaults = [vp for vp in default_virtuals(self.subdir) if vp.name not in names]
        return list(self.declared) + defaults


def subdir_keys(requires_pixi: Any) -> tuple[str, ...]:
    """The keys that may name a platform's subdir: `platform`, and `subdir` as well once
    requires-pixi admits only pixi >= 0.85."""
    low = _lower_bound(requires_pixi)
    return ("platform", "subdir") if low is not None and low >= SUBDIR_KEY_SINCE else ("platform",)


def _lower_bound(spec: Any) -> tuple[int, ...] | None:
    """The smallest pixi version a `requires-pixi` string admits (>=, >, == or ~= bounds)."""
    if not isinstance(spec, str):
        return None
    best = None
    for part in spec.split(","):
        match = re.match(r"^\s*(>=|>|==|~=)\s*v?(\d+(?:\.\d+)*)\s*$", part)
        if match:
            version = tuple(int(x) for x in match.group(2).split("."))
            best = version if best is None else max(best, version)
    return best


def parse_platform(entry: Any, where: str, keys: tuple[str, ...]) -> PlatformDecl:
    """One `[workspace].platforms` entry, or EnvcheckError naming what pixi would reject."""
    if isinstance(entry, str):
        return PlatformDecl(_subdir(entry, where), entry)
    if not isinstance(entry, dict):
        raise EnvcheckError(
            f"malformed manifest {where}: platform entry {entry!r} is neither a subdir string "
            "nor a table"
        )
    label = f"{where}: platform entry {_short(entry)}"
    _reject_unknown_keys(entry, label, keys)
    given = [k for k in keys if k in entry]
    if len(given) > 1:
        raise EnvcheckError(f"{label}: set the subdir once, with `{given[0]}` only")
    raw_subdir = entry[given[0]] if given else entry.get("name")
    if raw_subdir is None:
        raise EnvcheckError(f"{label}: a platform entry must set at least one of name or platform")
    if not given and (not isinstance(raw_subdir, str) or raw_subdir not in SUBDIRS):
        raise EnvcheckError(
            f"{label}: {raw_subdir!r} is not a conda subdir; set `platform` explicitly when "
            "using a custom name"
        )
    subdir = _subdir(raw_subdir, label)
    declared = _declared(entry, label)
    name = _name(entry["name"], label) if "name" in entry else derived_name(subdir, declared)
    if name == subdir:
        if declared:  # pixi: IsSubdirPlatform
            raise EnvcheckError(
                f"{label}: a platform named after its subdir cannot declare virtual packages; "
                "drop them or give the entry a `name` distinct from its subdir"
            )
        return PlatformDecl(subdir, subdir)
    return PlatformDecl(name, subdir, tuple(declared), rich=True)


def derived_name(subdir: str, declared: list[Virtual]) -> str:
    """pixi's synthesize_name_string: the subdir, then `key-value` for each non-default virtual
    package (friendly keys in canonical order, then the others sorted by name)."""
    custom = [vp for vp in declared if not is_subdir_default(vp, subdir)]
    parts = [subdir]
    used = set()
    for key, conda in _FRIENDLY.items():
        vp = next((v for v in custom if v.name == conda), None)
        if vp is None:
            continue
        if conda == "__archspec":
            if vp.version not in ("0", "0.0") or not vp.build:
                continue
            value = vp.build
        elif vp.build not in ("", "0"):
            continue
        else:
            value = vp.version
        used.add(conda)
        parts.append(f"{key}-{_segment(value)}")
    for vp in sorted((v for v in custom if v.name not in used), key=lambda v: v.name):
        value = vp.version if vp.build in ("", "0") else f"{vp.version}={vp.build}"
        parts.append(f"{_segment(vp.name.lstrip('_'))}-{_segment(value)}")
    return "-".join(parts)


def sysreq_virtual(key: str, value: Any, where: str) -> Virtual:
    """One `[system-requirements]` entry as a virtual package (keys as pixi 0.77 reads them)."""
    if key == "libc":
        family, version = "glibc", value
        if isinstance(value, dict):
            extra = sorted(set(value) - {"family", "version"})
            if extra or "version" not in value:
                raise EnvcheckError(
                    f"{where}: [system-requirements] libc = {value!r}: "
                    "only `family` and `version` (required) are allowed"
                )
            family, version = value.get("family", "glibc"), value["version"]
        return Virtual(f"__{_text(family, where, 'libc.family')}", _version(version, where, key))
    if key not in _SYSREQ:
        raise EnvcheckError(
            f"{where}: [system-requirements] has unknown key {key!r}; pixi reads "
            "cuda, libc, linux, macos and archspec there (or declare it on a named platform)"
        )
    if key == "archspec":
        return Virtual("__archspec", "0", _text(value, where, key))
    return Virtual(_SYSREQ[key], _version(value, where, key))


def _reject_unknown_keys(entry: dict, label: str, keys: tuple[str, ...]) -> None:
    allowed = {"name", *keys, *_FRIENDLY, *_ALIASES}
    for key in entry:
        if key in allowed or key.startswith("__"):
            continue
        if key == "subdir":
            hint = (
                "`subdir` is pixi 0.85's name for `platform`, and this workspace's requires-pixi "
                "admits pixi < 0.85, which rejects it: write `platform =` (or raise "
                "requires-pixi to >=0.85)"
            )
        else:
            hint = _HINTS.get(key, "pixi 0.77 rejects unknown platform keys")
        raise EnvcheckError(
            f"{label}: unknown key {key!r}; {hint}. A platform table takes name, platform, "
            "cuda, archspec, glibc, linux, macos (or osx), windows and raw __name keys"
        )


def _declared(entry: dict, label: str) -> list[Virtual]:
    out: list[Virtual] = []
    if "cuda" in entry:
        out += _cuda(entry["cuda"], label)
    for key, conda in _FRIENDLY.items():
        aliases = [alias for alias, target in _ALIASES.items() if target == key]
        spellings = [k for k in (key, *aliases) if k in entry]
        if key == "cuda" or not spellings:
            continue
        if len(spellings) > 1:
            raise EnvcheckError(f"{label}: '{spellings[1]}' is an alias for '{key}'; set only one")
        value = _text(entry[spellings[0]], label, spellings[0])
        if conda == "__archspec":
            out.append(Virtual(conda, "0", value))
        else:
            out.append(Virtual(conda, _version(value, label, key)))
    for key, value in entry.items():
        if not key.startswith("__"):
            continue
        text = _text(value, label, key)
        vp = Virtual.parse(f"{key}={text}")
        _version(vp.version, label, key)
        if any(d.name == vp.name for d in out):
            raise EnvcheckError(
                f"{label}: '{vp.name}' is declared more than once; set it via either a "
                f"friendly key or the raw '{key}' key, not both"
            )
        out.append(vp)
    names = {vp.name for vp in out}
    if "__cuda_arch" in names and "__cuda" not in names:
        raise EnvcheckError(f"{label}: `__cuda_arch` requires `__cuda` to be declared as well")
    return out


def _cuda(value: Any, label: str) -> list[Virtual]:
    if isinstance(value, str):
        return [Virtual("__cuda", _version(value, label, "cuda"))]
    if not isinstance(value, dict):
        raise EnvcheckError(f"{label}: cuda = {value!r} is neither a version string nor a table")
    extra = sorted(set(value) - {"driver", "arch"})
    if extra or "driver" not in value:
        raise EnvcheckError(
            f"{label}: cuda = {value!r}: the table takes `driver` (required) and `arch`"
        )
    out = [Virtual("__cuda", _version(value["driver"], label, "cuda.driver"))]
    if "arch" in value:
        out.append(Virtual("__cuda_arch", _version(value["arch"], label, "cuda.arch")))
    return out


def _subdir(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in SUBDIRS:
        raise EnvcheckError(
            f"{where}: {value!r} is not a conda subdir pixi knows (e.g. linux-64, osx-arm64, "
            "win-64)"
        )
    return value


def _name(value: Any, label: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) > _MAX_NAME
        or not _NAME_RE.match(value)
        or value in _RESERVED
    ):
        raise EnvcheckError(
            f"{label}: {value!r} is not a valid platform name (a letter, then letters, digits "
            "and '-', at most 64 characters, not linux/unix/win/osx/macos)"
        )
    return value


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EnvcheckError(f"{where}: {key} = {value!r} must be a non-empty string")
    return value.strip()


def _version(value: Any, where: str, key: str) -> str:
    text = _text(value, where, key)
    if not _VERSION_RE.match(text):
        raise EnvcheckError(f"{where}: {key} = {text!r} is not a valid version")
    return text


def _segment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _short(entry: dict) -> str:
    text = repr(entry)
    return text if len(text) <= 120 else text[:117] + "..."
