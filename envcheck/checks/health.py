"""health: the GPU's own fitness from NVML: memory errors, retired memory, throttling, the
PCIe link, persistence mode, temperature and power.

The rules are pure functions over the plain facts envcheck.probes.health gathers (verify's
NVML probe at idle; the torch kernels probe while it loads the GPUs), so recorded facts
replay and `envcheck doctor` (standard library only) judges the same facts the same way.
A query the GPU or driver does not offer is "not supported": a skip, never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..model import CheckResult, DeviceResult, Status, worst
from .registry import Context, register

CAT = "health"

# Corrected (single-bit) ECC errors are repaired in flight; a GPU counting more than this many
# per hour since boot (a lower bound of the rate since the driver loaded) is wearing out.
CORRECTED_PER_HOUR_WARN = 10.0

# nvml.h clock event (throttle) reasons
GPU_IDLE = 0x1
APPLICATIONS_CLOCKS = 0x2
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SYNC_BOOST = 0x10
SW_THERMAL = 0x20
HW_THERMAL = 0x40
HW_POWER_BRAKE = 0x80
DISPLAY_CLOCKS = 0x100
REASON_NAMES = {
    GPU_IDLE: "idle",
    APPLICATIONS_CLOCKS: "application clocks setting",
    SW_POWER_CAP: "power cap (software)",
    HW_SLOWDOWN: "HW slowdown",
    SYNC_BOOST: "sync boost",
    SW_THERMAL: "thermal slowdown (software)",
    HW_THERMAL: "HW thermal slowdown",
    HW_POWER_BRAKE: "HW power brake slowdown",
    DISPLAY_CLOCKS: "display clock setting",
}
# (reason, status, cause, fix), worst first; reasons not listed are normal operation
THROTTLE_RULES = (
    (
        HW_THERMAL,
        Status.FAIL,
        "the GPU held its clocks down to protect itself from heat (HW thermal slowdown)",
        "check the cooling: fans, airflow, inlet temperature, a blocked heatsink "
        "(`nvidia-smi -q -d PERFORMANCE,TEMPERATURE`); drain the node until fixed",
    ),
    (
        HW_POWER_BRAKE,
        Status.FAIL,
        "the chassis asserted the power brake: the GPU's clocks were cut (HW power brake)",
        "check the power supplies, their cables and the BMC's power capping "
        "(`nvidia-smi -q -d PERFORMANCE,POWER`); drain the node until fixed",
    ),
    (
        HW_SLOWDOWN,
        Status.FAIL,
        "the board held the GPU's clocks down (HW slowdown: over-temperature or a power "
        "supply problem)",
        "check the cooling and the power delivery (`nvidia-smi -q -d PERFORMANCE`); drain the "
        "node until fixed",
    ),
    (
        SW_THERMAL,
        Status.WARN,
        "the driver lowered the clocks because the GPU runs hot (thermal slowdown)",
        "check the cooling and airflow (`nvidia-smi -q -d TEMPERATURE`)",
    ),
)
RESET_OR_DRAIN = (
    "reset the GPU / drain the node: stop its jobs, then `nvidia-smi -r -i <index>` (or reboot)"
)
GPU_LOST_FIX = (
    "the GPU fell off the bus: drain the node and reboot; if it recurs, check the slot, "
    "power and `dmesg` for Xid 79, and replace the card"
)
READ_ERROR_FIX = "rerun; check the GPU with `nvidia-smi -q` and the kernel log for Xid errors"


@dataclass
class Verdict:
    """One aspect of one GPU's health."""

    status: Status
    message: str
    cause: str | None = None
    fix: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def _num(value: Any) -> int | float | None:
    """A count or reading from recorded facts, or None (bools and strings are no numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unreadable(h: dict[str, Any], fact: str) -> Verdict | None:
    """The verdict where NVML failed (not unsupported) to read ``fact``, else None."""
    errors = _dict(h.get("errors"))
    error = errors.get(fact)
    if not isinstance(error, str):
        return None
    if "gpu_lost" in errors or "GPU is lost" in error:
        return Verdict(Status.FAIL, "NVML says the GPU is lost", f"NVML: {error}", GPU_LOST_FIX)
    return Verdict(
        Status.WARN, f"could not read ({error})", f"NVML could not read it: {error}", READ_ERROR_FIX
    )


NOT_SUPPORTED = "not supported by this GPU or driver"


# --- the rules --------------------------------------------------------------------------


def judge_ecc(
    h: dict[str, Any], uptime_s: Any = None, loaded: dict[str, Any] | None = None
) -> Verdict:
    """Uncorrectable ECC errors (volatile or lifetime) FAIL; corrected ones above
    CORRECTED_PER_HOUR_WARN per hour since boot, or any during the load, WARN."""
    bad = _unreadable(h, "ecc_errors") or _unreadable(h, "ecc_mode")
    if bad:
        return bad
    if h.get("ecc_mode") == 0:
        return Verdict(Status.SKIP, "ECC is switched off on this GPU", figures={"ecc_mode": 0})
    counts = _dict(h.get("ecc_errors"))
    if not counts:
        return Verdict(Status.SKIP, f"ECC: {NOT_SUPPORTED}")
    vc, vu = _num(counts.get("volatile_corrected")), _num(counts.get("volatile_uncorrected"))
    ac, au = _num(counts.get("aggregate_corrected")), _num(counts.get("aggregate_uncorrected"))
    during = _num(_dict(loaded).get("ecc_corrected_during_load"))
    uptime = _num(uptime_s)
    rate = round(vc / (uptime / 3600), 2) if vc is not None and uptime else None
    figures = {
        "volatile_corrected": vc,
        "volatile_uncorrected": vu,
        "aggregate_corrected": ac,
        "aggregate_uncorrected": au,
        "corrected_per_hour_since_boot": rate,
        "corrected_during_load": during,
        "corrected_per_hour_warn": CORRECTED_PER_HOUR_WARN,
    }
    summary = (
        f"since driver load {vu if vu is not None else '?'} uncorrectable, "
        f"{vc if vc is not None else '?'} corrected"
        + (f" ({rate}/h)" if rate is not None else "")
        + f"; lifetime {au if au is not None else '?'} uncorrectable, "
        f"{ac if ac is not None else '?'} corrected"
    )
    if vu:
        return Verdict(
            Status.FAIL,
            f"{vu} uncorrectable ECC error(s) since the driver loaded (lifetime: {au})",
            f"{vu} uncorrectable ECC error(s) since the driver loaded: a job's data was lost",
            f"{RESET_OR_DRAIN}; if they return, replace the card "
            "(`nvidia-smi -q -d ECC,ROW_REMAPPER`)",
            figures,
        )
    if au:
        return Verdict(
            Status.FAIL,
            f"{au} uncorrectable ECC error(s) in the GPU's lifetime, none since the driver loaded",
            f"{au} uncorrectable ECC error(s) in the GPU's lifetime (aggregate counter)",
            "check that the bad memory was remapped or retired (`nvidia-smi -q -d "
            f"ROW_REMAPPER,PAGE_RETIREMENT`) and {RESET_OR_DRAIN}; once cleared for service, "
            "`nvidia-smi -p 1 -i <index>` resets the lifetime counter",
            figures,
        )
    if during:
        return Verdict(
            Status.WARN,
            f"{during} corrected ECC error(s) during the load ({vc} since the driver loaded)",
            f"the GPU's memory produced {during} corrected error(s) during a few seconds of load",
            "watch the count (`nvidia-smi -q -d ECC`); if it grows, drain the node and test the "
            "memory (`dcgmi diag -r 3`)",
            figures,
        )
    # over at least an hour: one error minutes after boot is no rate
    if rate is not None and vc > CORRECTED_PER_HOUR_WARN * max(uptime / 3600, 1):
        return Verdict(
            Status.WARN,
            f"{vc} corrected ECC errors since the driver loaded, {rate}/h since boot",
            f"corrected ECC errors at {rate} per hour since boot, above the "
            f"{CORRECTED_PER_HOUR_WARN:g}/h envcheck warns at",
            "watch the count (`nvidia-smi -q -d ECC`); if it grows, drain the node and test the "
            "memory (`dcgmi diag -r 3`)",
            figures,
        )
    return Verdict(Status.PASS, f"ECC on: {summary}", figures=figures)


def judge_retired_memory(h: dict[str, Any]) -> Verdict:
    """Row remapping (Ampere and later) or page retirement (earlier GPUs): a remap or a
    retirement waiting for a reset, or a failed remap, FAIL."""
    bad = _unreadable(h, "remapped_rows") or _unreadable(h, "retired_pages")
    if bad:
        return bad
    rows, pages = _dict(h.get("remapped_rows")), _dict(h.get("retired_pages"))
    if rows:
        figures = {f"remapped_rows_{k}": rows.get(k) for k in ("corrected", "uncorrected")}
        figures.update(
            remap_pending=rows.get("pending") is True, remap_failed=rows.get("failed") is True
        )
        done = (
            f"{rows.get('corrected')} row(s) remapped for corrected, "
            f"{rows.get('uncorrected')} for uncorrectable errors"
        )
        if rows.get("failed") is True:
            return Verdict(
                Status.FAIL,
                f"a row remap failed; {done}",
                "a memory row with errors could not be remapped: the GPU has no spare rows left",
                f"{RESET_OR_DRAIN}; a failed remap means the card must be replaced",
                figures,
            )
        if rows.get("pending") is True:
            return Verdict(
                Status.FAIL,
                f"a row remap is pending; {done}",
                "a memory row with errors stays in use until the GPU is reset (remap pending)",
                RESET_OR_DRAIN,
                figures,
            )
        return Verdict(Status.PASS, f"no remap pending or failed; {done}", figures=figures)
    if pages:
        figures = {
            "retired_pages_single_bit": pages.get("single_bit"),
            "retired_pages_double_bit": pages.get("double_bit"),
            "retirement_pending": pages.get("pending") is True,
        }
        done = (
            f"{pages.get('single_bit')} page(s) retired for repeated corrected errors, "
            f"{pages.get('double_bit')} for uncorrectable ones"
        )
        if pages.get("pending") is True:
            return Verdict(
                Status.FAIL,
                f"page retirement pending; {done}",
                "memory pages with errors stay in use until the GPU is reset (retirement pending)",
                RESET_OR_DRAIN,
                figures,
            )
        return Verdict(Status.PASS, f"no retirement pending; {done}", figures=figures)
    return Verdict(Status.SKIP, f"row remapping and page retirement: {NOT_SUPPORTED}")


def reason_names(mask: int) -> list[str]:
    names = [name for bit, name in REASON_NAMES.items() if mask & bit]
    unknown = mask & ~sum(REASON_NAMES)
    return names + ([f"other ({unknown:#x})"] if unknown else [])


def judge_clocks(h: dict[str, Any], loaded: dict[str, Any] | None) -> Verdict:
    """Clock event reasons: HW slowdown, HW thermal and power brake FAIL, software thermal
    slowdown WARNs; idle, application clocks, power cap, sync boost and display are normal."""
    source = loaded if loaded and loaded.get("loaded") is True else h
    bad = _unreadable(source, "clock_event_reasons")
    if bad:
        return bad
    mask = _num(source.get("clock_event_reasons"))
    if not isinstance(mask, int):
        return Verdict(Status.SKIP, f"clock event reasons: {NOT_SUPPORTED}")
    when = (
        f"under load ({source.get('clock_event_samples')} samples)"
        if source is loaded
        else "at idle (not read under load: no torch GPU load ran)"
    )
    counts = _dict(source.get("clock_event_reason_samples"))
    figures = {
        "clock_event_reasons": mask,
        "reasons": reason_names(mask),
        "under_load": source is loaded,
        "reason_samples": counts,
        "samples": source.get("clock_event_samples") if source is loaded else 1,
    }
    for bit, status, cause, fix in THROTTLE_RULES:
        if mask & bit:
            seen = counts.get(hex(bit))
            often = f" in {seen} of {figures['samples']} samples" if seen else ""
            return Verdict(
                status,
                f"{REASON_NAMES[bit]}{often} {when}",
                cause,
                fix,
                figures,
            )
    names = ", ".join(reason_names(mask)) or "none"
    return Verdict(Status.PASS, f"no slowdown {when}; reasons: {names}", figures=figures)


def judge_pcie(h: dict[str, Any], loaded: dict[str, Any] | None) -> Verdict:
    """The link's generation and width against the most this GPU and slot can do, read under
    load: idle links train down to save power, so an idle reading is not judged."""
    under_load = bool(loaded and loaded.get("loaded") is True)
    bad = _unreadable(h, "pcie") or (_unreadable(loaded, "pcie") if under_load else None)
    if bad:
        return bad
    link = _dict((loaded if under_load else h).get("pcie"))
    gen, width = _num(link.get("gen")), _num(link.get("width"))
    max_gen, max_width = _num(link.get("max_gen")), _num(link.get("max_width"))
    if None in (gen, width, max_gen, max_width):
        return Verdict(Status.SKIP, f"PCIe link: {NOT_SUPPORTED}")
    figures = {
        "gen": gen,
        "width": width,
        "max_gen": max_gen,
        "max_width": max_width,
        "under_load": under_load,
    }
    now, best = f"Gen{gen} x{width}", f"Gen{max_gen} x{max_width}"
    if not under_load:
        return Verdict(
            Status.SKIP,
            f"{now} at idle (can do {best}); not judged: links train down at idle and no torch "
            "GPU load ran",
            figures=figures,
        )
    if gen < max_gen or width < max_width:
        return Verdict(
            Status.WARN,
            f"{now} under load, below the {best} this GPU and slot can do",
            f"the PCIe link runs at {now} under load instead of {best}: host-GPU copies "
            "(data loading, checkpoints) are slower",
            "reseat the GPU or its riser, use a full x16 slot, check the BIOS PCIe speed "
            "setting and `nvidia-smi -q -d PCIE` (or `lspci -vv`: LnkSta vs LnkCap)",
            figures,
        )
    return Verdict(Status.PASS, f"{now} under load, the most it can do", figures=figures)


def judge_persistence(h: dict[str, Any], system: Any) -> Verdict:
    """Persistence mode off on Linux WARNs: servers want the driver state kept."""
    if system != "linux":
        return Verdict(Status.SKIP, "persistence mode exists on Linux only")
    bad = _unreadable(h, "persistence_mode")
    if bad:
        return bad
    mode = h.get("persistence_mode")
    if mode is None or isinstance(mode, bool) or not isinstance(mode, int):
        return Verdict(Status.SKIP, f"persistence mode: {NOT_SUPPORTED}")
    if mode == 0:
        return Verdict(
            Status.WARN,
            "persistence mode is off",
            "with persistence mode off the driver tears the GPU down whenever no process uses "
            "it: every first CUDA call waits for it (seconds) and settings such as power "
            "limits and application clocks are lost",
            "on a server, run the persistence daemon: `sudo systemctl enable --now "
            "nvidia-persistenced` (or `sudo nvidia-smi -pm 1`)",
            {"persistence_mode": 0},
        )
    return Verdict(Status.PASS, "persistence mode is on", figures={"persistence_mode": 1})


def judge_temperature_power(h: dict[str, Any], loaded: dict[str, Any] | None) -> Verdict:
    """Temperature and power against their limits, as figures (throttling is judged by
    the clocks rule)."""
    under_load = bool(loaded and loaded.get("loaded") is True)
    bad = _unreadable(h, "temperature") or _unreadable(h, "power")
    if under_load:
        bad = bad or _unreadable(loaded, "temperature") or _unreadable(loaded, "power")
    if bad:
        return bad
    src = loaded if under_load else h
    figures = {
        "temperature_c": _num(src.get("temperature_c")),
        "temperature_slowdown_c": _num(h.get("temperature_slowdown_c")),
        "temperature_shutdown_c": _num(h.get("temperature_shutdown_c")),
        "power_w": _num(src.get("power_w")),
        "power_limit_w": _num(h.get("power_limit_w")),
        "under_load": under_load,
    }
    parts = []
    if figures["temperature_c"] is not None:
        limit = figures["temperature_slowdown_c"]
        parts.append(
            f"{figures['temperature_c']} °C" + (f" (slowdown at {limit} °C)" if limit else "")
        )
    if figures["power_w"] is not None:
        limit = figures["power_limit_w"]
        parts.append(f"{figures['power_w']} W" + (f" of {limit} W" if limit else ""))
    if not parts:
        return Verdict(Status.SKIP, f"temperature and power: {NOT_SUPPORTED}")
    when = "peak under load" if under_load else "at idle"
    return Verdict(Status.PASS, f"{', '.join(parts)} {when}", figures=figures)


# --- per GPU, per machine -----------------------------------------------------------------

ASPECTS = {
    "ecc": "ECC memory errors",
    "retired_memory": "remapped rows / retired pages",
    "clocks": "clock event (throttle) reasons",
    "pcie": "PCIe link",
    "persistence": "persistence mode",
    "temperature_power": "temperature and power",
}


# aspect -> its rule over one GPU: (idle facts, the NVML facts, its readings under load)
RULES: dict[str, Callable[[dict[str, Any], dict[str, Any], dict[str, Any] | None], Verdict]] = {
    "ecc": lambda h, nvml, loaded: judge_ecc(h, nvml.get("uptime_s"), loaded),
    "retired_memory": lambda h, nvml, loaded: judge_retired_memory(h),
    "clocks": lambda h, nvml, loaded: judge_clocks(h, loaded),
    "pcie": lambda h, nvml, loaded: judge_pcie(h, loaded),
    "persistence": lambda h, nvml, loaded: judge_persistence(h, nvml.get("system")),
    "temperature_power": lambda h, nvml, loaded: judge_temperature_power(h, loaded),
}


def judge_aspect(
    aspect: str, h: dict[str, Any], nvml: dict[str, Any], loaded: dict[str, Any] | None
) -> Verdict:
    """One aspect of one GPU: ``h`` its idle facts, ``loaded`` its readings under load."""
    return RULES[aspect](h, nvml, loaded)


def _uuid_key(uuid: Any) -> str:
    """NVML says GPU-<uuid>, torch the bare <uuid>: compare them without the prefix."""
    return str(uuid or "").lower().removeprefix("gpu-")


def loaded_by_uuid(load: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The kernels probe's readings under load (load_health), by GPU UUID."""
    if not isinstance(load, dict) or not load.get("available"):
        return {}
    gpus = load.get("gpus")
    return {
        _uuid_key(g.get("uuid")): g
        for g in (gpus if isinstance(gpus, list) else [])
        if isinstance(g, dict)
    }


def fix_for_gpu(fix: str | None, index: Any) -> str | None:
    """A fix naming one GPU: its commands' `-i <index>` filled in, ready to copy."""
    if fix and isinstance(index, int) and not isinstance(index, bool):
        return fix.replace("<index>", str(index))
    return fix


def gpu_label(g: dict[str, Any]) -> str:
    return f"GPU {g.get('index')} {g.get('uuid')}"


def judge_machine(
    nvml: dict[str, Any],
    load: dict[str, Any] | None = None,
    aspects: tuple[str, ...] = tuple(ASPECTS),
) -> dict[str, list[tuple[dict[str, Any], Verdict]]]:
    """aspect -> [(gpu, verdict)] for every GPU NVML lists (``aspects``: which to judge)."""
    loaded = loaded_by_uuid(load)
    out: dict[str, list[tuple[dict[str, Any], Verdict]]] = {a: [] for a in aspects}
    gpus = nvml.get("gpus") if isinstance(nvml.get("gpus"), list) else []
    for g in gpus:
        if not isinstance(g, dict):
            continue
        h = _dict(g.get("health"))
        ld = loaded.get(_uuid_key(g.get("uuid")))
        for aspect in aspects:
            if not h:
                verdict = Verdict(Status.SKIP, "no health facts recorded")
            else:  # "health": the whole reading broke (envcheck.probes.nvml)
                verdict = _unreadable(h, "health") or judge_aspect(aspect, h, nvml, ld)
            out[aspect].append((g, verdict))
    return out


def aspect_result(aspect: str, verdicts: list[tuple[dict[str, Any], Verdict]]) -> CheckResult:
    title = ASPECTS[aspect]
    devices = [
        DeviceResult(
            gpu_label(g),
            v.status,
            v.message,
            v.figures,
            v.cause,
            fix_for_gpu(v.fix, g.get("index")),
        )
        for g, v in verdicts
    ]
    status = worst([v.status for _, v in verdicts])
    bad = [
        (g, v) for g, v in verdicts if v.status is status and status in (Status.FAIL, Status.WARN)
    ]
    if bad:
        names = ", ".join(f"GPU {g.get('index')}" for g, _ in bad)
        first = bad[0][1]
        return CheckResult(
            CAT,
            aspect,
            status,
            f"{names}: {first.message}",
            cause=f"GPU {bad[0][0].get('index')}: {first.cause}",
            fix=first.fix,
            devices=devices,
        )
    if len(verdicts) == 1:
        g, v = verdicts[0]
        return CheckResult(
            CAT, aspect, status, f"GPU {g.get('index')}: {v.message}", devices=devices
        )
    if status is Status.SKIP:
        return CheckResult(CAT, aspect, status, verdicts[0][1].message, devices=devices)
    return CheckResult(CAT, aspect, status, f"{len(devices)} GPU(s): {title} ok", devices=devices)


# --- verify's checks ------------------------------------------------------------------------


def has_gpus(ctx: Context) -> bool:
    """Whether NVML lists a GPU: without one (no driver, or a failed NVML probe, which
    devices.gpus reports) there is no GPU health to report, and these checks are left out."""
    outcome = ctx.outcome("nvml")
    return outcome.ok and bool(outcome.data.get("available")) and bool(outcome.data.get("gpus"))


def load_facts(ctx: Context, start: bool = True) -> tuple[dict[str, Any] | None, str]:
    """The torch kernels probe's NVML readings under load, or None and why there are none.

    Read with outcome(), not data(): a failed kernels probe is the kernels check's to report.
    ``start`` False: only if the kernels probe already ran (a light check starts no load).
    """
    if "torch" not in ctx.frameworks or not ctx.gpu_expected:
        return None, "no torch GPU load in this run"
    if not start and "torch.kernels" not in ctx.facts:
        return None, "the kernels check did not run"
    facts = ctx.outcome("torch.facts")
    if not facts.ok or not facts.data.get("cuda_available"):
        return None, "torch sees no GPU (see devices.torch)"
    kernels = ctx.outcome("torch.kernels")
    if not kernels.ok:
        return None, "the torch kernels probe failed (see kernels.torch)"
    load = kernels.data.get("load_health")
    if not isinstance(load, dict) or not load.get("available"):
        why = load.get("error") if isinstance(load, dict) else "not recorded"
        return None, f"no NVML readings under load ({why})"
    return load, ""


def _check(ctx: Context, aspect: str, heavy: bool) -> CheckResult:
    nvml = ctx.data("nvml")
    load, why = load_facts(ctx, start=heavy)
    result = aspect_result(aspect, judge_machine(nvml, load, (aspect,))[aspect])  # only its own
    if load is None:
        result.figures["not_under_load"] = why
    return result


# Judged under load (they start the torch kernels probe, so `envcheck info` leaves them out);
# the others read the load's facts only where the kernels check already ran.
UNDER_LOAD = ("clocks", "pcie", "temperature_power")


def _register(aspect: str) -> None:
    heavy = aspect in UNDER_LOAD
    register(CAT, aspect, heavy=heavy, when=has_gpus)(lambda ctx: _check(ctx, aspect, heavy))


for _aspect in ASPECTS:
    _register(_aspect)
