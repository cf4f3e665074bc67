"""What each environment profile promises: CUDA line, frameworks, GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from .errors import EnvcheckError

PROFILE_ENV = "ENVCHECK_PROFILE"
FRAMEWORKS_ENV = "ENVCHECK_FRAMEWORKS"
KNOWN_FRAMEWORKS = ("torch", "tensorflow")


@dataclass(frozen=True)
class Profile:
    name: str
    cuda_major: int | None
    frameworks: tuple[str, ...]
    # The build-string prefix conda-forge uses for this CUDA line (what to install instead).
    build_hint: str
    # where the choice came from: "--expect", "$ENVCHECK_PROFILE" or "default" (none named)
    source: str = field(default="default", compare=False)

    @property
    def named(self) -> bool:
        return self.source != "default"

    @property
    def wants_gpu(self) -> bool:
        return self.cuda_major is not None


PROFILES = {
    "cpu": Profile("cpu", None, ("torch", "tensorflow"), "cpu_*"),
    "cuda11": Profile("cuda11", 11, ("torch",), "cuda118*"),
    "cuda12": Profile("cuda12", 12, ("torch", "tensorflow"), "cuda12*"),
    "cuda13": Profile("cuda13", 13, ("torch",), "cuda13*"),
}


def resolve_profile(name: str | None) -> Profile:
    """--expect, else $ENVCHECK_PROFILE (set by the pixi env on activation), else cpu."""
    chosen = name or os.environ.get(PROFILE_ENV) or "cpu"
    source = "--expect" if name else f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "default"
    try:
        return replace(PROFILES[chosen], source=source)
    except KeyError:
        known = ", ".join(PROFILES)
        raise EnvcheckError(
            f"unknown profile {chosen!r} (from {source}); choose one of: {known}", exit_code=2
        ) from None


def resolve_frameworks(option: str | None, profile: Profile) -> tuple[str, ...]:
    """--framework, else $ENVCHECK_FRAMEWORKS (per platform in pixi.toml), else the profile's."""
    raw = option or os.environ.get(FRAMEWORKS_ENV)
    if not raw:
        return profile.frameworks
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    aliases = {"pytorch": "torch", "tf": "tensorflow"}
    names = tuple(aliases.get(n, n) for n in names)
    bad = [n for n in names if n not in KNOWN_FRAMEWORKS]
    if bad or not names:
        raise EnvcheckError(
            f"unknown framework {', '.join(bad) or raw!r}; use a comma list of: "
            + ", ".join(KNOWN_FRAMEWORKS),
            exit_code=2,
        )
    return names
