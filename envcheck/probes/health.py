"""The GPU's own health from NVML, as plain data: ECC counts, retired memory, clock event
(throttle) reasons, the PCIe link, persistence mode, temperature and power.

Gathering only; envcheck.checks.health judges. Works with nvidia-ml-py's pynvml and with the
ctypes fallback (same names and returns). A query that the GPU or driver does not offer is
listed under "unsupported", never an error; any other NVML error is kept, in NVML's words,
under "errors". Imports no framework: the torch kernels probe calls ``sample_while`` around
its load, so clocks and the link are read while the GPU works.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

# NVML return codes (nvml.h) that mean "this GPU or driver does not offer the query"
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_FUNCTION_NOT_FOUND = 13
UNSUPPORTED_CODES = (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND)
NVML_ERROR_GPU_IS_LOST = 15

# nvml.h enums
MEMORY_ERROR_CORRECTED, MEMORY_ERROR_UNCORRECTED = 0, 1
VOLATILE_ECC, AGGREGATE_ECC = 0, 1
RETIRED_MULTIPLE_SINGLE_BIT, RETIRED_DOUBLE_BIT = 0, 1
TEMPERATURE_GPU = 0
THRESHOLD_SHUTDOWN, THRESHOLD_SLOWDOWN = 0, 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Reader:
    """One GPU's queries; records which were unsupported and which failed, and how."""

    def __init__(self, nv: Any, handle: Any) -> None:
        self.nv = nv
        self.handle = handle
        self.unsupported: list[str] = []
        self.errors: dict[str, str] = {}

    def query(self, fact: str, fn: str, *args: Any) -> Any:
        """NVML's answer, or None (the fact is then listed as unsupported or as an error)."""
        func = getattr(self.nv, fn, None)
        if func is None:  # a binding without this query: the driver's answer is unknown
            self._unsupported(fact)
            return None
        try:
            return func(self.handle, *args)
        except Exception as exc:
            if getattr(exc, "value", None) in UNSUPPORTED_CODES:
                self._unsupported(fact)
            else:
                text = _text(exc)  # the ctypes fallback's text names the function already
                text = text if text.startswith(fn) else f"{fn}: {text}"
                self.errors.setdefault(fact, text[:200])
                if getattr(exc, "value", None) == NVML_ERROR_GPU_IS_LOST:  # by code, not words
                    self.errors.setdefault("gpu_lost", self.errors[fact])
            return None

    def _unsupported(self, fact: str) -> None:
        if fact not in self.unsupported:
            self.unsupported.append(fact)

    def first(self, fact: str, *fns: str) -> Any:
        """The first of several names of one query that answers (newer name first)."""
        for fn in fns:
            value = self.query(fact, fn)
            if value is not None or fact in self.errors or fn == fns[-1]:
                return value
            self.unsupported.remove(fact)  # the older name may answer
        return None


def _ecc(r: Reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mode = r.query("ecc_mode", "nvmlDeviceGetEccMode")
    out["ecc_mode"] = int(mode[0]) if mode is not None else None
    if mode is not None and not mode[0]:
        return {**out, "ecc_errors": None}  # ECC off: the counters do not count
    counts = {}
    for counter, counter_name in ((VOLATILE_ECC, "volatile"), (AGGREGATE_ECC, "aggregate")):
        for kind, kind_name in (
            (MEMORY_ERROR_CORRECTED, "corrected"),
            (MEMORY_ERROR_UNCORRECTED, "uncorrected"),
        ):
            value = r.query("ecc_errors", "nvmlDeviceGetTotalEccErrors", kind, counter)
            counts[f"{counter_name}_{kind_name}"] = int(value) if value is not None else None
    out["ecc_errors"] = counts if any(v is not None for v in counts.values()) else None
    return out


def _rows(r: Reader) -> dict[str, Any]:
    rows = r.query("remapped_rows", "nvmlDeviceGetRemappedRows")
    remapped = None
    if rows is not None:
        corrected, uncorrected, pending, failed = rows
        remapped = {
            "corrected": int(corrected),
            "uncorrected": int(uncorrected),
            "pending": bool(pending),
            "failed": bool(failed),
        }
    retired = None
    single = r.query("retired_pages", "nvmlDeviceGetRetiredPages", RETIRED_MULTIPLE_SINGLE_BIT)
    double = r.query("retired_pages", "nvmlDeviceGetRetiredPages", RETIRED_DOUBLE_BIT)
    if single is not None or double is not None:
        pending = r.query("retired_pages", "nvmlDeviceGetRetiredPagesPendingStatus")
        retired = {
            "single_bit": len(single) if single is not None else None,
            "double_bit": len(double) if double is not None else None,
            "pending": bool(pending) if pending is not None else None,
        }
    return {"remapped_rows": remapped, "retired_pages": retired}


def _watts(mw: Any) -> float | None:
    return round(mw / 1000, 1) if mw is not None else None


def live(r: Reader) -> dict[str, Any]:
    """What changes with load: clock event reasons, the link, temperature and power."""
    reasons = r.first(
        "clock_event_reasons",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetCurrentClocksThrottleReasons",  # drivers before 535
    )
    return {
        "clock_event_reasons": int(reasons) if reasons is not None else None,
        "pcie": {
            "gen": r.query("pcie", "nvmlDeviceGetCurrPcieLinkGeneration"),
            "width": r.query("pcie", "nvmlDeviceGetCurrPcieLinkWidth"),
            "max_gen": r.query("pcie", "nvmlDeviceGetMaxPcieLinkGeneration"),
            "max_width": r.query("pcie", "nvmlDeviceGetMaxPcieLinkWidth"),
        },
        "temperature_c": r.query("temperature", "nvmlDeviceGetTemperature", TEMPERATURE_GPU),
        "power_w": _watts(r.query("power", "nvmlDeviceGetPowerUsage")),
    }


def read_gpu(nv: Any, handle: Any) -> dict[str, Any]:
    """Every health fact of one GPU, at this moment (idle, for verify's NVML probe)."""
    r = Reader(nv, handle)
    out: dict[str, Any] = {}
    out.update(_ecc(r))
    out.update(_rows(r))
    out["persistence_mode"] = r.query("persistence_mode", "nvmlDeviceGetPersistenceMode")
    out.update(live(r))
    out["temperature_slowdown_c"] = r.query(
        "temperature", "nvmlDeviceGetTemperatureThreshold", THRESHOLD_SLOWDOWN
    )
    out["temperature_shutdown_c"] = r.query(
        "temperature", "nvmlDeviceGetTemperatureThreshold", THRESHOLD_SHUTDOWN
    )
    out["power_limit_w"] = _watts(r.query("power", "nvmlDeviceGetEnforcedPowerLimit"))
    out["unsupported"] = r.unsupported
    out["errors"] = r.errors
    return out


def uptime_s() -> float | None:
    """Seconds since boot (Linux): the volatile ECC counters count since the driver loaded,
    which is no earlier, so count / uptime is a lower bound of their rate."""
    try:
        with open("/proc/uptime", encoding="ascii") as f:
            return float(f.read(64).split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --- under load ---------------------------------------------------------------------------


def _merge(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Many live readings of one GPU as one: every reason seen and how often, the best link
    (links train up under load), the hottest and the highest power."""
    reasons = [s["clock_event_reasons"] for s in samples if s["clock_event_reasons"] is not None]
    seen: dict[str, int] = {}
    for mask in reasons:
        for bit in range(64):
            if mask >> bit & 1:
                seen[hex(1 << bit)] = seen.get(hex(1 << bit), 0) + 1

    def best(key: str, part: str | None = None) -> Any:
        values = [s[key][part] if part else s[key] for s in samples]
        values = [v for v in values if isinstance(v, (int, float))]
        return max(values) if values else None

    any_mask = 0
    for mask in reasons:
        any_mask |= mask
    return {
        "samples": len(samples),
        "clock_event_reasons": any_mask if reasons else None,
        "clock_event_reason_samples": seen,
        "clock_event_samples": len(reasons),
        "pcie": {p: best("pcie", p) for p in ("gen", "width", "max_gen", "max_width")},
        "temperature_c": best("temperature_c"),
        "power_w": best("power_w"),
    }


def _corrected(r: Reader) -> int | None:
    value = r.query("ecc_errors", "nvmlDeviceGetTotalEccErrors", MEMORY_ERROR_CORRECTED, 0)
    return int(value) if value is not None else None


def sample_while(
    load: Callable[[], Any], uuids: list[str] | None, interval_s: float = 0.1
) -> dict[str, Any]:
    """Run ``load()`` while a thread reads every GPU's live facts each ``interval_s``.

    ``uuids``: the NVML UUIDs of the GPUs the load runs on (None: unknown), so a GPU that
    CUDA_VISIBLE_DEVICES hid is reported as not loaded. Never raises for NVML: no NVML is
    {"available": False, ...}. ``load`` raising propagates (after the thread stops).
    """
    from .nvml import binding

    nv, name = binding()
    # NVML says GPU-<uuid>; torch's device properties may give the bare <uuid>
    wanted = {u.lower().removeprefix("gpu-") for u in uuids} if uuids else None
    try:
        nv.nvmlInit()
        readers, gpus = [], []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            uuid = _text(nv.nvmlDeviceGetUUID(h))
            readers.append(Reader(nv, h))
            key = uuid.lower().removeprefix("gpu-")
            gpus.append({"index": i, "uuid": uuid, "loaded": key in wanted if wanted else None})
    except Exception as exc:  # no NVML here: the load still runs, unobserved
        _shutdown(nv)
        load()
        return {"available": False, "binding": name, "error": _text(exc)[:200]}
    try:
        before = [_corrected(r) for r in readers]
        samples: list[list[dict[str, Any]]] = [[] for _ in readers]
        stop = threading.Event()

        def sample() -> None:
            while True:
                for r, kept in zip(readers, samples):
                    kept.append(live(r))
                if stop.wait(interval_s):
                    return

        thread = threading.Thread(target=sample, daemon=True)
        start = time.monotonic()
        thread.start()
        try:
            load()
        finally:
            stop.set()
            thread.join(timeout=10)
        seconds = time.monotonic() - start
        for g, r, kept, was in zip(gpus, readers, samples, before):
            g.update(_merge(kept))
            now = _corrected(r)
            g["ecc_corrected_during_load"] = now - was if None not in (now, was) else None
            g["unsupported"] = r.unsupported
            g["errors"] = r.errors
        return {"available": True, "binding": name, "seconds": round(seconds, 2), "gpus": gpus}
    finally:
        _shutdown(nv)


def _shutdown(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:
        pass
