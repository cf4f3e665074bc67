#!/usr/bin/env python3
"""Fail a GPU leg early when this machine's NVIDIA driver is too old for the environment.

pixi installs a CUDA environment on a driver that reports an older CUDA than the platform
declares (the locked records depend on a bare `__cuda`); `pixi run` warns about it once per
workspace and environment (a marker under .pixi/one-time-messages), so gpu.yml would spend the
install (several GB) before verify fails. This reads the driver through
NVML (nvidia-ml-py when installed, else envcheck's ctypes binding over the driver's own
libnvidia-ml), takes the CUDA the environment declares on this machine's subdir from pixi.lock,
and applies envcheck's own driver rule (envcheck.diagnose.driver_too_old):

    python .ci/gpu_preflight.py --env cuda12 [--lock pixi.lock]

Exit 0: the driver is new enough (a GPU the build may not support is a warning: verify's arch
check decides). Exit 1: no driver, or a driver too old, with one `::error::` line naming the
fix. Needs PyYAML (for the lock) and the checkout on sys.path.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gha_matrix import MatrixError, load_lock, lock_platforms  # noqa: E402

from envcheck.diagnose import MIN_DRIVER, driver_too_old  # noqa: E402
from envcheck.probes.nvml import _read_all  # noqa: E402

MACHINE_SUBDIR = {"x86_64": "linux-64", "amd64": "linux-64", "aarch64": "linux-aarch64"}
# Compute capabilities the CUDA lines build for (NVIDIA's CUDA release notes): CUDA 13 dropped
# everything before Turing (sm_75); CUDA 11.8 stops at Hopper (sm_90), no Blackwell.
CC_RANGE = {11: ((3, 5), (9, 0)), 12: ((5, 0), None), 13: ((7, 5), None)}


def read_nvml() -> dict:
    try:
        import pynvml as nv
    except ImportError:
        from envcheck.probes.nvml_ctypes import CtypesNvml

        nv = CtypesNvml()
    try:
        nv.nvmlInit()
    except Exception as exc:  # NVMLError from either binding: no driver, no library
        return {"available": False, "error": str(exc)}
    try:
        return {"available": True, **_read_all(nv)}
    finally:
        nv.nvmlShutdown()


def env_cuda(lock: dict, env: str, subdir: str) -> str | None:
    """The `__cuda` the environment's platform on `subdir` declares (None: a CPU platform)."""
    platforms = lock_platforms(lock)
    locked = (lock["environments"].get(env) or {}).get("packages") or {}
    for name in locked:
        info = platforms.get(str(name), {"subdir": str(name), "cuda": ""})
        if info["subdir"] == subdir and info["cuda"]:
            return info["cuda"]
    return None


def arch_warnings(nvml: dict, major: int) -> list[str]:
    low, high = CC_RANGE.get(major, (None, None))
    out = []
    for gpu in nvml.get("gpus", []):
        cc = tuple(int(x) for x in str(gpu.get("compute_capability") or "0.0").split("."))
        if (low and cc < low) or (high and cc > high):
            out.append(
                f"GPU {gpu.get('index')} {gpu.get('name')} (sm_{cc[0]}{cc[1]}) is outside what "
                f"CUDA {major} builds target; expect verify's architecture check to fail"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--lock", type=Path, default=REPO / "pixi.lock")
    args = parser.parse_args(argv)
    subdir = MACHINE_SUBDIR.get(platform.machine().lower(), platform.machine())
    try:
        cuda = env_cuda(load_lock(args.lock), args.env, subdir)
    except MatrixError as exc:
        print(f"::error::gpu-preflight: {exc}")
        return 1
    if cuda is None:
        print(f"::error::gpu-preflight: {args.env} is not locked for a CUDA platform on {subdir}")
        return 1
    major = int(cuda.split(".")[0])
    nvml = read_nvml()
    if not nvml["available"]:
        print(
            f"::error::gpu-preflight: no NVIDIA driver answers ({nvml['error']}); this runner "
            f"cannot run {args.env}: install a driver >= {MIN_DRIVER.get(major, '?')}"
        )
        return 1
    print(
        f"driver {nvml['driver_version']} (CUDA {nvml.get('cuda_driver_version') or '?'}); "
        f"{args.env} on {subdir} declares __cuda={cuda} (driver >= {MIN_DRIVER.get(major, '?')})"
    )
    for gpu in nvml.get("gpus", []):
        print(
            f"  GPU {gpu['index']}: {gpu['name']}, compute capability {gpu['compute_capability']}"
        )
    diagnosis = driver_too_old(nvml, cuda)
    if diagnosis is not None:
        print(f"::error::gpu-preflight: {diagnosis.cause}; {diagnosis.fix}")
        return 1
    for warning in arch_warnings(nvml, major):
        print(f"::warning::gpu-preflight: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
