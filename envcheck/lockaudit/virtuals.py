"""Virtual packages: what a platform offers a solve, as pixi writes them into a v7 lock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

# The microarchitecture pixi assumes for a subdir that declares none.
_ARCH = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "osx-64": "x86_64",
    "osx-arm64": "m1",
    "win-64": "x86_64",
    "win-arm64": "arm64",
}


@dataclass(frozen=True)
class Virtual:
    """A virtual package as pixi writes it into a v7 lock: `__name=version[=build]`."""

    name: str
    version: str
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Virtual:
        parts = text.strip().split("=")
        return cls(parts[0], parts[1] if len(parts) > 1 else "0", "=".join(parts[2:]))

    def __str__(self) -> str:
        return f"{self.name}={self.version}" + (f"={self.build}" if self.build else "")


def default_virtuals(subdir: str) -> list[Virtual]:
    """pixi's defaults for a subdir (what a bare "linux-64" entry offers), in lock order."""
    out = []
    if not subdir.startswith("win-"):
        out.append(Virtual("__unix", "0", "0"))
    if subdir.startswith("linux-"):
        out += [Virtual("__linux", "4.18"), Virtual("__glibc", "2.28")]
    if subdir.startswith("win-"):
        out.append(Virtual("__win", "10.0"))
    if subdir.startswith("osx-"):
        out.append(Virtual("__osx", "13.0"))
    if subdir in _ARCH:
        out.append(Virtual("__archspec", "0", _ARCH[subdir]))
    return out


def same_version(a: str, b: str) -> bool:
    """Conda version equality ("2.28" == "2.28.0"), as pixi compares virtual packages."""
    if a == b:
        return True
    try:
        from rattler import Version
    except ImportError:  # tools without py-rattler: trailing zero segments do not count
        return _trimmed(a) == _trimmed(b)
    try:
        return bool(Version(a) == Version(b))
    except Exception:  # an unparsable version equals only itself
        return False


def _trimmed(version: str) -> list[str]:
    parts = version.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return parts


def is_subdir_default(vp: Virtual, subdir: str) -> bool:
    """pixi's `is_subdir_default`: exactly a default of the subdir (name, version, build)."""
    return any(
        d.name == vp.name and same_version(d.version, vp.version) and d.build == vp.build
        for d in default_virtuals(subdir)
    )


def customised(subdir: str, virtuals: Iterable[Virtual]) -> list[str]:
    """The virtual packages that are not the subdir's defaults, as sorted `__name=version[=build]`
    strings: what pixi compares between a platform's definition and its lock entry."""
    return sorted(str(vp) for vp in virtuals if not is_subdir_default(vp, subdir))


def for_solver(vp: Virtual) -> Virtual:
    """pixi writes __archspec with version 0, but conda-forge's microarch packages depend on
    `__archspec 1.*`: a solve needs version 1."""
    return replace(vp, version="1") if vp.name == "__archspec" else vp
