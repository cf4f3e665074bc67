"""Is envcheck running in a container, and was the container given the GPU?

A container started without `--gpus all` (Docker, with the NVIDIA Container Toolkit), without
`--device nvidia.com/gpu=all` (Podman, CDI) or without `--nv` (Apptainer) has no /dev/nvidia*
devices and no driver library: NVML says only "library not found", which reads like a machine
without a driver. These facts let the diagnosis name the flag instead.
"""

from __future__ import annotations

import glob
import os
import tempfile
from typing import Any

from .errors import EnvcheckError

# Files the runtimes create inside every container, most specific first.
MARKERS = (
    ("/.singularity.d", "apptainer"),
    ("/run/.containerenv", "podman"),
    ("/.dockerenv", "docker"),
)
ENV_PREFIXES = ("APPTAINER_", "SINGULARITY_")
GPU_FLAGS = {
    "apptainer": "apptainer run --nv (or exec/shell --nv)",
    "podman": "podman run --device nvidia.com/gpu=all (NVIDIA Container Toolkit, CDI)",
    "docker": "docker run --gpus all (NVIDIA Container Toolkit)",
}
# Where runtimes put the driver's user-space libraries: Apptainer's --nv, the NVIDIA
# Container Toolkit (the distribution's lib folder), and older nvidia-docker/Kubernetes images.
DRIVER_DIRS = (
    "/.singularity.d/libs",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
)
DRIVER_LIBRARY = "libnvidia-ml.so.1"


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def runtime(environ: dict[str, str], root: str = "/") -> str | None:
    """apptainer, podman, docker, or None when no container marker is found."""
    if any(k.startswith(ENV_PREFIXES) and k.endswith("_CONTAINER") for k in environ):
        return "apptainer"
    for marker, name in MARKERS:
        if os.path.exists(_under(root, marker)):
            return name
    return None


def driver_library(root: str = "/") -> str | None:
    """The driver's NVML library in a folder a container runtime injects it into."""
    for folder in DRIVER_DIRS:
        path = os.path.join(_under(root, folder), DRIVER_LIBRARY)
        if os.path.exists(path):
            return path
    return None


def facts(environ: dict[str, str], root: str = "/") -> dict[str, Any]:
    """Plain data for the environment facts; {} outside a container."""
    name = runtime(environ, root)
    if name is None:
        return {}
    devices = sorted(os.path.basename(p) for p in glob.glob(_under(root, "/dev/nvidia*")))
    return {
        "runtime": name,
        "nvidia_devices": devices,
        "driver_library": driver_library(root),
        "gpu_flag": GPU_FLAGS[name],
    }


def require_temp_dir() -> None:
    """Probes run from a temp folder: say in one line when none can be written (a read-only
    container with no writable /tmp), instead of tempfile's traceback later."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise EnvcheckError(
            "no writable folder for temporary files: $TMPDIR, /tmp, /var/tmp and the current "
            "folder are all read-only (a read-only container?); set TMPDIR to a writable "
            "folder, or give the container one (docker run --tmpfs /tmp; apptainer binds the "
            "host's /tmp unless --contain is used, then add --writable-tmpfs)"
        ) from None
