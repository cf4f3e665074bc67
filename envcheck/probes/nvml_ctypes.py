"""A minimal NVML binding over ctypes, used only where nvidia-ml-py is not installed.

conda-forge environments may lack nvidia-ml-py; libnvidia-ml ships with every NVIDIA
driver, so reading the few values envcheck needs stays possible. Same names and return
shapes as pynvml for the functions used in envcheck.probes.nvml.
"""

from __future__ import annotations

import ctypes
import os
import sys
from types import SimpleNamespace

LIBRARY_NAMES = (
    ("libnvidia-ml.so.1", "libnvidia-ml.so") if sys.platform != "win32" else ("nvml.dll",)
)


class NVMLError(Exception):
    """NVML's return code in ``value``, as pynvml's NVMLError carries it."""

    def __init__(self, message: str, value: int | None = None) -> None:
        super().__init__(message)
        self.value = value


class _Memory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


class _ProcessInfo(ctypes.Structure):
    # nvmlProcessInfo_t as nvmlDeviceGetComputeRunningProcesses_v3 fills it (NVML 12+)
    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    ]


NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_FUNCTION_NOT_FOUND = 13  # pynvml's code for a symbol the driver does not export


class CtypesNvml:
    NVMLError = NVMLError

    def __init__(self, root: str = "/") -> None:
        self._lib = None
        self._root = root  # tests point it at a simulated container's file tree

    def _library_candidates(self) -> list[str]:
        """The loader's search first (LD_LIBRARY_PATH, ldconfig), then the folders container
        runtimes inject the driver into (Apptainer --nv, NVIDIA Container Toolkit), for a
        shell or activation that reset LD_LIBRARY_PATH."""
        if sys.platform == "win32":
            return list(LIBRARY_NAMES)
        from ..container import DRIVER_DIRS, DRIVER_LIBRARY

        folders = [os.path.join(self._root, d.lstrip("/")) for d in DRIVER_DIRS]
        return [*LIBRARY_NAMES, *(os.path.join(f, DRIVER_LIBRARY) for f in folders)]

    def _function(self, name: str):
        """The driver's function; NVMLError(FUNCTION_NOT_FOUND) where an older driver lacks it."""
        try:
            return getattr(self._lib, name)
        except AttributeError:
            raise NVMLError(f"{name}: Function Not Found", NVML_ERROR_FUNCTION_NOT_FOUND) from None

    def _call(self, name: str, *args) -> None:
        rc = self._function(name)(*args)
        if rc != 0:
            raise NVMLError(f"{name}: {self._error_string(rc)}", rc)

    def _error_string(self, rc: int) -> str:
        # NVML's own words for the code, as pynvml gives them ("Driver Not Loaded", ...)
        try:
            fn = self._lib.nvmlErrorString
            fn.restype = ctypes.c_char_p
            return f"{fn(rc).decode()} (NVML error {rc})"
        except Exception:
            return f"NVML error {rc}"

    def nvmlInit(self) -> None:
        for name in self._library_candidates():
            try:
                self._lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise NVMLError("NVML Shared Library Not Found")
        self._call("nvmlInit_v2")

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")

    def _string(self, name: str, *args) -> str:
        buf = ctypes.create_string_buffer(96)
        self._call(name, *args, buf, ctypes.c_uint(96))
        return buf.value.decode()

    def _int(self, name: str, *args) -> int:
        value = ctypes.c_int()
        self._call(name, *args, ctypes.byref(value))
        return value.value

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._string("nvmlSystemGetDriverVersion")

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return self._int("nvmlSystemGetCudaDriverVersion_v2")

    def nvmlDeviceGetCount(self) -> int:
        count = ctypes.c_uint()
        self._call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        return count.value

    def nvmlDeviceGetHandleByIndex(self, index: int):
        handle = ctypes.c_void_p()
        self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
        return handle

    def nvmlDeviceGetName(self, h) -> str:
        return self._string("nvmlDeviceGetName", h)

    def nvmlDeviceGetUUID(self, h) -> str:
        return self._string("nvmlDeviceGetUUID", h)

    def nvmlDeviceGetMemoryInfo(self, h) -> SimpleNamespace:
        mem = _Memory()
        self._call("nvmlDeviceGetMemoryInfo", h, ctypes.byref(mem))
        return SimpleNamespace(total=mem.total, used=mem.used, free=mem.free)

    def nvmlDeviceGetCudaComputeCapability(self, h) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._call(
            "nvmlDeviceGetCudaComputeCapability", h, ctypes.byref(major), ctypes.byref(minor)
        )
        return major.value, minor.value

    def nvmlDeviceGetMigMode(self, h) -> tuple[int, int]:
        current, pending = ctypes.c_uint(), ctypes.c_uint()
        self._call("nvmlDeviceGetMigMode", h, ctypes.byref(current), ctypes.byref(pending))
        return current.value, pending.value

    def nvmlDeviceGetComputeMode(self, h) -> int:
        return self._int("nvmlDeviceGetComputeMode", h)

    def nvmlDeviceGetPersistenceMode(self, h) -> int:
        return self._int("nvmlDeviceGetPersistenceMode", h)

    # --- health (envcheck.probes.health): same names, arguments and returns as pynvml ---

    def _uint(self, name: str, *args) -> int:
        value = ctypes.c_uint()
        self._call(name, *args, ctypes.byref(value))
        return value.value

    def nvmlDeviceGetEccMode(self, h) -> list[int]:
        current, pending = ctypes.c_int(), ctypes.c_int()
        self._call("nvmlDeviceGetEccMode", h, ctypes.byref(current), ctypes.byref(pending))
        return [current.value, pending.value]

    def nvmlDeviceGetTotalEccErrors(self, h, error_type: int, counter_type: int) -> int:
        count = ctypes.c_ulonglong()
        self._call(
            "nvmlDeviceGetTotalEccErrors",
            h,
            ctypes.c_int(error_type),
            ctypes.c_int(counter_type),
            ctypes.byref(count),
        )
        return count.value

    def nvmlDeviceGetRemappedRows(self, h) -> tuple[int, int, int, int]:
        values = [ctypes.c_uint() for _ in range(4)]
        self._call("nvmlDeviceGetRemappedRows", h, *(ctypes.byref(v) for v in values))
        corrected, uncorrected, pending, failed = (v.value for v in values)
        return corrected, uncorrected, pending, failed

    def nvmlDeviceGetRetiredPages(self, h, cause: int) -> list[int]:
        name = "nvmlDeviceGetRetiredPages"
        count = ctypes.c_uint(0)
        rc = self._function(name)(h, ctypes.c_int(cause), ctypes.byref(count), None)
        if rc not in (0, NVML_ERROR_INSUFFICIENT_SIZE):
            raise NVMLError(f"{name}: {self._error_string(rc)}", rc)
        pages = (ctypes.c_ulonglong * (count.value * 2 + 5))()  # room for pages retired meanwhile
        count = ctypes.c_uint(len(pages))
        self._call(name, h, ctypes.c_int(cause), ctypes.byref(count), pages)
        return list(pages[: count.value])

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h) -> int:
        return self._int("nvmlDeviceGetRetiredPagesPendingStatus", h)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h) -> int:
        reasons = ctypes.c_ulonglong()
        self._call("nvmlDeviceGetCurrentClocksEventReasons", h, ctypes.byref(reasons))
        return reasons.value

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h) -> int:
        reasons = ctypes.c_ulonglong()
        self._call("nvmlDeviceGetCurrentClocksThrottleReasons", h, ctypes.byref(reasons))
        return reasons.value

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h) -> int:
        return self._uint("nvmlDeviceGetCurrPcieLinkGeneration", h)

    def nvmlDeviceGetCurrPcieLinkWidth(self, h) -> int:
        return self._uint("nvmlDeviceGetCurrPcieLinkWidth", h)

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h) -> int:
        return self._uint("nvmlDeviceGetMaxPcieLinkGeneration", h)

    def nvmlDeviceGetMaxPcieLinkWidth(self, h) -> int:
        return self._uint("nvmlDeviceGetMaxPcieLinkWidth", h)

    def nvmlDeviceGetTemperature(self, h, sensor: int) -> int:
        return self._uint("nvmlDeviceGetTemperature", h, ctypes.c_int(sensor))

    def nvmlDeviceGetTemperatureThreshold(self, h, threshold: int) -> int:
        return self._uint("nvmlDeviceGetTemperatureThreshold", h, ctypes.c_int(threshold))

    def nvmlDeviceGetPowerUsage(self, h) -> int:
        return self._uint("nvmlDeviceGetPowerUsage", h)

    def nvmlDeviceGetEnforcedPowerLimit(self, h) -> int:
        return self._uint("nvmlDeviceGetEnforcedPowerLimit", h)

    def nvmlDeviceGetComputeRunningProcesses(self, h) -> list[SimpleNamespace]:
        """The compute processes on the GPU (their count tells a busy exclusive GPU)."""
        name = "nvmlDeviceGetComputeRunningProcesses_v3"
        count = ctypes.c_uint(0)
        rc = self._function(name)(h, ctypes.byref(count), None)
        if rc == 0:
            return []
        if rc != NVML_ERROR_INSUFFICIENT_SIZE:
            raise NVMLError(f"{name}: {self._error_string(rc)}", rc)
        infos = (_ProcessInfo * (count.value + 8))()  # room for processes starting meanwhile
        count = ctypes.c_uint(len(infos))
        self._call(name, h, ctypes.byref(count), infos)
        return [
            SimpleNamespace(pid=p.pid, usedGpuMemory=p.usedGpuMemory) for p in infos[: count.value]
        ]
