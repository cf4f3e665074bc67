"""What the machine offers: OS, CPU architecture, C library, NVIDIA driver and GPUs.

Only the standard library: doctor runs before any environment exists. The facts are one plain
dict, so a test (or ``envcheck doctor --facts FILE``) can replay another machine's.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

NVML_TIMEOUT_S = 30.0  # a wedged driver can hang NVML; the probe runs in its own process
# verify's NVML probe: nvidia-ml-py, else the driver's libnvidia-ml via ctypes (a bare Python)
NVML_PROBE = "envcheck.probes.nvml:gather"

# (sys.platform prefix, platform.machine()) -> conda subdir
SUBDIRS = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "amd64"): "linux-64",
    ("linux", "aarch64"): "linux-aarch64",
    ("linux", "arm64"): "linux-aarch64",
    ("linux", "ppc64le"): "linux-ppc64le",
    ("darwin", "arm64"): "osx-arm64",
    ("darwin", "x86_64"): "osx-64",
    ("win32", "amd64"): "win-64",
    ("win32", "x86_64"): "win-64",
    ("win32", "arm64"): "win-arm64",
}


def subdir_for(system: str, machine: str) -> str:
    key = (system, machine.lower())
    return SUBDIRS.get(key, f"{system}-{machine.lower()}")


def glibc_version() -> str | None:
    """The C library's own answer (``glibc 2.35`` -> ``2.35``); None where it is not glibc."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        text = None
    if text and text.startswith("glibc "):
        return text.split()[1]
    name, version = platform.libc_ver()
    return version if name == "glibc" and version else None


def platform_facts() -> dict[str, Any]:
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    machine = platform.machine()
    return {
        "system": system,
        "machine": machine,
        "subdir": subdir_for(system, machine),
        "glibc": glibc_version() if system == "linux" else None,
        "osx": (platform.mac_ver()[0] or None) if system == "darwin" else None,
        "python": platform.python_version(),
    }


def nvml_facts(system: str, timeout: float = NVML_TIMEOUT_S) -> dict[str, Any]:
    if system == "darwin":
        return {"available": False, "reason": "no_driver", "error": "macOS has no NVIDIA driver"}
    from ..runner import run_probe

    outcome = run_probe(NVML_PROBE, {}, timeout=timeout)
    if outcome.ok:
        return outcome.data
    return {"available": False, "reason": "probe_failed", "error": outcome.describe_failure()}


def gather_facts() -> dict[str, Any]:
    plat = platform_facts()
    return {"platform": plat, "nvml": nvml_facts(plat["system"])}
