"""Driver and GPU facts from NVML (nvidia-ml-py or ctypes), never from nvidia-smi text or nvcc.

Runs in a subprocess: a wedged driver can hang NVML calls.
"""

from __future__ import annotations

import sys
from typing import Any

from . import health

COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def binding():
    """nvidia-ml-py's pynvml where installed, else the ctypes fallback over the driver's NVML.

    conda-forge environments may lack nvidia-ml-py; libnvidia-ml ships with every driver.
    """
    try:
        import pynvml

        return pynvml, "nvidia-ml-py"
    except ImportError:
        from .nvml_ctypes import CtypesNvml

        return CtypesNvml(), "ctypes"


def gather(args: dict[str, Any]) -> dict[str, Any]:
    """NVML's view of the driver and GPUs. NVML unavailable is data (no GPU facts), not a crash."""
    nv, name = binding()
    try:
        nv.nvmlInit()
    except Exception as exc:  # library missing, driver not loaded, no permission, ...
        return {"available": False, "reason": "no_driver", "binding": name, "error": _text(exc)}
    try:
        return {"available": True, "binding": name, **_read_all(nv)}
    except Exception as exc:  # a query NVML itself fails: no facts, said as such
        return {"available": False, "reason": "query_failed", "binding": name, "error": _text(exc)}
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass


def _optional(nv, name: str, *args, default=None):
    """NVML answers NotSupported for some queries on some boards: that is not a failure.

    A query the binding lacks (the ctypes fallback reads fewer) reads as unknown too.
    """
    try:
        return getattr(nv, name)(*args)
    except Exception:
        return default


def _health(nv, h) -> dict[str, Any]:
    """The GPU's health facts; a reading that breaks outright leaves the GPU's other facts."""
    try:
        return health.read_gpu(nv, h)
    except Exception as exc:
        return {"unsupported": [], "errors": {"health": f"{type(exc).__name__}: {exc}"[:200]}}


def _read_all(nv) -> dict[str, Any]:
    cuda = _optional(nv, "nvmlSystemGetCudaDriverVersion_v2") or _optional(
        nv, "nvmlSystemGetCudaDriverVersion"
    )
    gpus = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        cc = _optional(nv, "nvmlDeviceGetCudaComputeCapability", h)
        mig = _optional(nv, "nvmlDeviceGetMigMode", h)
        mode = _optional(nv, "nvmlDeviceGetComputeMode", h)
        gpus.append(
            {
                "index": i,
                "name": _text(nv.nvmlDeviceGetName(h)),
                "uuid": _text(nv.nvmlDeviceGetUUID(h)),
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                "memory_total_mib": mem.total // 2**20,
                "memory_used_mib": mem.used // 2**20,
                "mig_mode": bool(mig[0]) if mig else False,
                "compute_mode": COMPUTE_MODES.get(mode, str(mode)) if mode is not None else None,
                "persistence_mode": _optional(nv, "nvmlDeviceGetPersistenceMode", h),
                "processes": len(
                    _optional(nv, "nvmlDeviceGetComputeRunningProcesses", h, default=[])
                ),
                "retired_pages_pending": _optional(nv, "nvmlDeviceGetRetiredPagesPendingStatus", h),
                # ECC, retired memory, clocks, link, temperature, power: judged by health.*
                "health": _health(nv, h),
            }
        )
    return {
        "system": "linux" if sys.platform.startswith("linux") else sys.platform,
        "uptime_s": health.uptime_s(),
        "driver_version": _text(nv.nvmlSystemGetDriverVersion()),
        # NVML encodes CUDA 12.4 as 12040
        "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
        "gpus": gpus,
    }
