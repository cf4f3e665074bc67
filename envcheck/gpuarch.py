"""CUDA GPU architecture targets and which GPUs can run them.

A build carries code for a list of targets: cubins ``sm_XY`` (binary, for one architecture)
and PTX ``compute_XY`` (compiled by the driver at first use). CUDA's rules, as PyTorch applies
them (torch/cuda/__init__.py, DEVICE_REQUIREMENT, PyTorch 2.13):

- ``sm_XY`` runs on the same major with an equal or higher minor (sm_80 code on an sm_86 GPU),
  except on the integrated Jetson GPUs (sm_53, sm_62, sm_72, sm_87), which run only their own
  code; ``sm_101`` (Thor before CUDA 13 renamed it) runs on sm_101 and sm_110;
- ``sm_XYf`` (family) follows the same rule within its family; ``sm_XYa`` (architecture-
  specific features) runs on exactly that architecture;
- ``compute_XY`` (PTX) is JIT-compiled forward to any newer architecture, other majors
  included; ``compute_XYa`` only to that architecture, ``compute_XYf`` within its family.

Pure functions of strings, so verify's architecture check and ``envcheck doctor`` share them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Integrated (Jetson) GPUs, and Thor as 10.1: they run only code built for them.
SELF_ONLY = {53, 62, 72, 87, 101}
# Code compiled for these runs on the listed devices only (torch's DEVICE_REQUIREMENT).
EXACT_SETS = {101: {101, 110}}


@dataclass(frozen=True)
class Target:
    """One entry of an architecture list: ``sm_90a`` is Target("sm", 90, "a")."""

    kind: str  # "sm" (cubin) or "compute" (PTX)
    cc: int  # 10 * major + minor
    suffix: str = ""  # "", "a" (arch-specific) or "f" (family)

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.cc}{self.suffix}"

    @property
    def is_ptx(self) -> bool:
        return self.kind == "compute"


@dataclass(frozen=True)
class Match:
    """How a GPU runs a build: the target used and whether it is binary or JIT-compiled PTX."""

    target: Target
    ptx: bool

    def describe(self) -> str:
        return f"{self.target.name} PTX, JIT-compiled" if self.ptx else f"{self.target.name} code"


def parse_target(text: str) -> Target:
    """``sm_86``, ``sm_100a``, ``sm_120f``, ``compute_90`` -> Target; ValueError otherwise."""
    kind, sep, rest = text.strip().lower().partition("_")
    suffix = rest[-1] if rest[-1:] in ("a", "f") else ""
    digits = rest[: len(rest) - len(suffix)]
    if not sep or kind not in ("sm", "compute") or not digits.isdigit() or len(digits) < 2:
        raise ValueError(f"not a CUDA architecture target: {text!r}")
    return Target(kind, int(digits), suffix)


def parse_targets(names: list[str] | tuple[str, ...]) -> list[Target]:
    """Parse an architecture list (e.g. ``torch.cuda.get_arch_list()``), skipping unknown words."""
    out = []
    for name in names:
        try:
            out.append(parse_target(name))
        except ValueError:
            continue
    return out


def parse_capability(cc: str | tuple[int, int]) -> int:
    """``"8.6"`` or ``(8, 6)`` -> 86."""
    if isinstance(cc, tuple):
        return 10 * int(cc[0]) + int(cc[1])
    major, _, minor = str(cc).partition(".")
    return 10 * int(major) + int(minor or 0)


def sm_name(cc: str | tuple[int, int]) -> str:
    return f"sm_{parse_capability(cc)}"


def from_torch_arch_list(value: str) -> list[str]:
    """A TORCH_CUDA_ARCH_LIST (``"7.5;8.0;12.0+PTX"``) -> target names, as torch's build makes them.

    Each entry gives ``sm_XY``; ``+PTX`` adds ``compute_XY``; a trailing ``a``/``f`` is kept.
    """
    names: list[str] = []
    for raw in value.replace(" ", ";").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        ptx = entry.upper().endswith("+PTX")
        if ptx:
            entry = entry[: -len("+PTX")]
        suffix = entry[-1] if entry[-1:] in ("a", "f") else ""
        cc = parse_capability(entry[: len(entry) - len(suffix)])
        names.append(f"sm_{cc}{suffix}")
        if ptx:
            names.append(f"compute_{cc}{suffix}")
    return names


def _binary_runs(code: int, device: int) -> bool:
    if code in EXACT_SETS:
        return device in EXACT_SETS[code]
    if code in SELF_ONLY or device in SELF_ONLY:
        return code == device
    return code // 10 == device // 10 and device % 10 >= code % 10


def target_runs(target: Target, device_cc: int) -> bool:
    """Can a GPU of compute capability ``device_cc`` (e.g. 86) run code for ``target``?"""
    if target.suffix == "a":
        return device_cc == target.cc
    if target.is_ptx and not target.suffix:
        # The driver JIT-compiles PTX for the same or any newer architecture, never older.
        return device_cc >= target.cc
    return _binary_runs(target.cc, device_cc)


def runs_on(targets: list[str] | list[Target], capability: str | tuple[int, int]) -> Match | None:
    """The best way a GPU runs a build with these targets: a cubin if any fits, else PTX; None
    when it cannot run the build at all."""
    device = parse_capability(capability)
    parsed = [t for t in targets if isinstance(t, Target)]
    parsed += parse_targets([t for t in targets if isinstance(t, str)])
    cubins = [t for t in parsed if not t.is_ptx and target_runs(t, device)]
    if cubins:
        return Match(max(cubins, key=lambda t: t.cc), ptx=False)
    ptx = [t for t in parsed if t.is_ptx and target_runs(t, device)]
    if ptx:
        return Match(max(ptx, key=lambda t: t.cc), ptx=True)
    return None
