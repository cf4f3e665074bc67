"""Facts about the interpreter, the conda/pixi prefix and the variables that steer CUDA."""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ..container import facts as container_facts

# CUDA toolkit and cuDNN libraries whose copies outside the env shadow the env's own when on
# LD_LIBRARY_PATH. Not the driver's own libcuda / libnvidia-ml: the env has no copy of those,
# and a driver folder on LD_LIBRARY_PATH (/usr/local/nvidia/lib64 in containers) is normal.
SHADOW_PATTERNS = (
    "libcudart.so*",
    "libcudnn*.so*",
    "libcublas*.so*",
    "libcufft*.so*",
    "libcurand.so*",
    "libcusolver*.so*",
    "libcusparse*.so*",
    "libnvrtc*.so*",
    "libnvJitLink.so*",
    "libnccl.so*",
)
# conda packages whose build strings tell which variant is installed.
KEY_PACKAGES = (
    "python",
    "pytorch",
    "libtorch",
    "pytorch-gpu",
    "pytorch-cpu",
    "tensorflow",
    "tensorflow-base",
    "tensorflow-gpu",
    "tensorflow-cpu",
    "keras",
    "cudnn",
    "cuda-version",
    "cudatoolkit",
    "nccl",
    "cuda-cudart",
    "libcublas",
    "numpy",
)
STEERING_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "CONDA_OVERRIDE_CUDA",
    "XLA_FLAGS",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "ENVCHECK_PROFILE",
    "ENVCHECK_FRAMEWORKS",
    "ENVCHECK_DATA_DIR",
    "NVIDIA_VISIBLE_DEVICES",
)


def conda_packages(prefix: str | None, names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, Any]:
    """name -> {version, build} for the key packages installed in ``prefix``."""
    out: dict[str, Any] = {}
    if not prefix:
        return out
    meta = Path(prefix, "conda-meta")
    for path in sorted(meta.glob("*.json")):
        name = path.name.rsplit("-", 2)[0]
        if name not in names:
            continue
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out[rec.get("name", name)] = {"version": rec.get("version"), "build": rec.get("build")}
    return out


def shadowing_libraries(ld_path: str, prefix: str | None) -> list[dict[str, Any]]:
    """CUDA/cuDNN libraries found on LD_LIBRARY_PATH entries outside the env prefix."""
    found = []
    root = os.path.realpath(prefix) if prefix else None
    for entry in [e for e in ld_path.split(os.pathsep) if e]:
        real = os.path.realpath(entry)
        if root and (real == root or real.startswith(root + os.sep)):
            continue
        libs = sorted(
            {
                os.path.basename(p)
                for pat in SHADOW_PATTERNS
                for p in glob.glob(os.path.join(real, pat))
            }
        )
        if libs:
            found.append({"path": entry, "libraries": libs})
    return found


def lock_drift(
    prefix: str | None,
    project_root: str | None,
    environ: dict[str, str],
    named: str | None = None,
) -> dict:
    """Installed records vs pixi.lock, as plain data: which lock environment was compared
    (the active pixi env, the one the profile names, or the closest by content) and why."""
    from ..lockaudit.drift import choose_lock_env, current_subdir, drift_findings, drift_skip_reason

    lock = Path(project_root or os.getcwd(), "pixi.lock")
    reason = drift_skip_reason(lock, prefix)
    if reason:
        return {"skipped": reason}
    choice = choose_lock_env(lock, prefix, named, environ)
    if choice.env is None:
        return {"skipped": choice.reason}
    fix = None
    if not choice.pixi:
        explicit = f"locks/explicit/{choice.env}-{current_subdir()}.txt"
        fix = (
            f"recreate the environment from the lock: `micromamba create -n {choice.env} -f "
            f"{explicit}` (or `conda create -n {choice.env} --file {explicit}`)"
        )
    findings = drift_findings(lock, prefix, choice.env, fix=fix)
    return {
        "lock": str(lock),
        "env": choice.env,
        "chosen_by": choice.reason,
        "findings": [f.to_dict() for f in findings],
    }


def gather(environ: dict[str, str] | None = None, lock_env: str | None = None) -> dict[str, Any]:
    """lock_env: the lock environment the profile names (None: none named)."""
    env = dict(os.environ if environ is None else environ)
    prefix = env.get("CONDA_PREFIX")
    ld_path = env.get("LD_LIBRARY_PATH", "")
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "release": platform.release(),
        },
        "conda_prefix": prefix,
        "python_in_prefix": bool(prefix)
        and os.path.realpath(sys.executable).startswith(os.path.realpath(prefix)),
        "pixi_environment": env.get("PIXI_ENVIRONMENT_NAME"),
        "pixi_project_root": env.get("PIXI_PROJECT_ROOT"),
        "ld_library_path": [e for e in ld_path.split(os.pathsep) if e],
        "shadowing": shadowing_libraries(ld_path, prefix),
        "variables": {k: env[k] for k in STEERING_VARS if k in env},
        "conda_packages": conda_packages(prefix),
        "lock_drift": lock_drift(prefix, env.get("PIXI_PROJECT_ROOT"), env, lock_env),
        "container": container_facts(env),
    }


def probe(args: dict[str, Any]) -> dict[str, Any]:
    """The probe host's entry (in-process): ``args["lock_env"]`` as for gather."""
    return gather(lock_env=args.get("lock_env"))
