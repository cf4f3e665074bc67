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
    # Subdirs where this profile's envs hold every framework above; elsewhere they hold
    # PyTorch alone (no TensorFlow build there fits, see pixi.toml). Empty: every subdir.
    full_subdirs: tuple[str, ...] = ()
    # where the choice came from: "--expect", "$ENVCHECK_PROFILE" or "default" (none named)
    source: str = field(default="default", compare=False)

    @property
    def named(self) -> bool:
        return self.source != "default"

    @property
    def wants_gpu(self) -> bool:
        return self.cuda_major is not None

    def frameworks_on(self, subdir: str) -> tuple[str, ...]:
        """The frameworks this profile's env holds on a conda subdir (linux-64, win-64, ...)."""
        if not self.full_subdirs or subdir in self.full_subdirs:
            return self.frameworks
        return ("torch",)


PROFILES = {
    "cpu": Profile("cpu", None, ("torch", "tensorflow"), "cpu_*", ("linux-64",)),
    "cuda11": Profile("cuda11", 11, ("torch",), "cuda118*"),
    "cuda12": Profile("cuda12", 12, ("torch", "tensorflow"), "cuda12*", ("linux-64",)),
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


def resolve_frameworks(
    option: str | None, profile: Profile, subdir: str | None = None
) -> tuple[str, ...]:
    """--framework, else $ENVCHECK_FRAMEWORKS (per platform in pixi.toml), else the profile's
    frameworks on `subdir` (default: this machine's)."""
    raw = option or os.environ.get(FRAMEWORKS_ENV)
    if not raw:
        if subdir is None:
            from .lockaudit.drift import current_subdir

            subdir = current_subdir()
        return profile.frameworks_on(subdir)
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


FRAMEWORK_LABELS = {"torch": "PyTorch", "tensorflow": "TensorFlow"}


def infer_profile(cuda_builds: dict[str, str | None]) -> tuple[Profile, str]:
    """The profile when neither --expect nor $ENVCHECK_PROFILE names one (a pip install, no
    pixi env to say it): the CUDA line of the installed framework builds, else cpu.

    ``cuda_builds`` maps each installed framework to the CUDA version it was built with (None
    for a CPU build). Returns the profile and why, in words for the report.
    """
    majors = {fw: _cuda_major(v) for fw, v in cuda_builds.items() if v}
    if not majors:
        return PROFILES["cpu"], "no installed framework is a CUDA build"
    builds = " and ".join(
        f"{FRAMEWORK_LABELS.get(fw, fw)} is a CUDA {cuda_builds[fw]} build" for fw in majors
    )
    lines = sorted(set(majors.values()))
    name = f"cuda{lines[0]}"
    if len(lines) > 1 or name not in PROFILES:
        raise EnvcheckError(
            f"no profile fits the installed builds ({builds}); pass --expect with the one to "
            f"verify ({', '.join(p for p in PROFILES if p != 'cpu')}), or --framework to check "
            "one framework",
            exit_code=2,
        )
    return PROFILES[name], f"{builds}; --expect cpu checks the CPU only"


def _cuda_major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return -1
