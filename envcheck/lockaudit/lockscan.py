"""A dependency-free reader of the few pixi.lock facts the drift check needs.

The drift check runs inside the pixi environments themselves: they do not ship py-rattler,
and the CUDA 11 env runs Python 3.9, which py-rattler 0.28 does not support. pixi writes
the lock in one fixed YAML layout, so a line scan suffices for: each environment's per-platform
package URLs, each platform's subdir, and each conda package's sha256. The tests check this
scan against py-rattler's reading of the real lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EnvcheckError
from ..fileio import decode_utf8, read_bounded

MAX_LOCK_BYTES = 128 * 1024 * 1024  # as lockfile.MAX_LOCK_BYTES (which imports py-rattler's reader)


@dataclass(frozen=True)
class ScannedRecord:
    name: str
    version: str
    build: str
    url: str
    sha256: str | None


@dataclass
class ScannedLock:
    platforms: dict[str, str] = field(default_factory=dict)  # platform name -> subdir
    envs: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # env -> plat -> URLs
    sha256: dict[str, str] = field(default_factory=dict)  # conda URL -> sha256
    virtual_packages: dict[str, list[str]] = field(default_factory=dict)  # platform -> __x=1
    depends: dict[str, list[str]] = field(default_factory=dict)  # conda URL -> depends specs

    def records(self, env: str, platform: str) -> dict[str, ScannedRecord]:
        """name -> record for one env x platform (conda packages only)."""
        out = {}
        for url in self.envs.get(env, {}).get(platform, []):
            name, version, build = split_filename(url)
            out[name] = ScannedRecord(name, version, build, url, self.sha256.get(url))
        return out


def split_filename(url: str) -> tuple[str, str, str]:
    """`.../<name>-<version>-<build>.conda` -> (name, version, build), conda's convention."""
    stem = url.rsplit("/", 1)[-1]
    for ext in (".conda", ".tar.bz2"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return stem.lower(), "", ""
    return parts[0].lower(), parts[1], parts[2]


def _value(line: str) -> str:
    return line.split(":", 1)[1].strip().strip("'\"")


def scan_lock(path: str | Path) -> ScannedLock:
    """Raise ValueError when the text is not a pixi lock this scan understands."""
    fix = "regenerate it with `pixi lock`"
    try:
        raw = read_bounded(path, MAX_LOCK_BYTES, "lock file", fix)
        text = decode_utf8(raw, path, "lock file", fix)
    except EnvcheckError as exc:
        raise ValueError(exc.message) from None
    out = ScannedLock()
    section = ""
    env = plat = url = None
    platform_name = None
    key = ""  # the current key of a package entry (depends:, constrains:, ...)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "-")):
            section = line.split(":", 1)[0].strip()
            continue
        if section == "platforms":
            if line.startswith("- name:"):
                platform_name = _value(line)
                out.platforms[platform_name] = platform_name
            elif line.startswith("  subdir:") and platform_name:
                out.platforms[platform_name] = _value(line)
            elif line.startswith("  - ") and platform_name:
                out.virtual_packages.setdefault(platform_name, []).append(line[4:].strip())
        elif section == "environments":
            indent = len(line) - len(line.lstrip(" "))
            stripped = line.strip()
            if indent == 2:
                env = stripped.rstrip(":").strip("'\"")
                out.envs[env] = {}
                plat = None
            elif indent == 4:
                plat = None  # channels:, options:, packages:
            elif indent == 6 and stripped.endswith(":") and env is not None:
                plat = stripped.rstrip(":").strip("'\"")
                out.envs[env][plat] = []
            elif stripped.startswith("- conda:") and env is not None and plat is not None:
                out.envs[env][plat].append(_value(stripped))
        elif section == "packages":
            if line.startswith("- "):
                url = _value(line) if line.startswith("- conda:") else None
                key = ""
            elif url and line.startswith("  sha256:"):
                out.sha256[url] = _value(line)
            elif url and line.startswith("  - "):
                if key == "depends":
                    out.depends.setdefault(url, []).append(line[4:].strip().strip("'\""))
            elif url and line.startswith("  ") and not line.startswith("   "):
                key = line.strip().split(":", 1)[0]
    if not out.envs:
        raise ValueError("no environments found")
    return out
