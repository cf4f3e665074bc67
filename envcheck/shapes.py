"""The shape of files that come from other machines, checked once on load.

A facts file (``verify --save-facts``, replayed with ``--replay``), a doctor answer
(``doctor --facts``) and a verify report (``envcheck report``) are untrusted input: each is
checked here, field by field, and refused with one line naming the first field that does not
fit ("facts.torch.facts.ok is a string, not true/false"), instead of a traceback wherever the
value is first used. Standard library only (doctor runs with a bare Python).
"""

from __future__ import annotations

import math
import re
from typing import Any

NUMBER = (int, float)
_NAMES = {
    str: "a string",
    bool: "true/false",
    dict: "an object",
    list: "a list",
    type(None): "null",
    int: "an integer",
    float: "a number",
}


class ShapeError(ValueError):
    """A field of the wrong type; the message names it."""


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return _NAMES.get(type(value), type(value).__name__)


def field(obj: dict[str, Any], key: str, types: Any, where: str, required: bool = False) -> Any:
    """``obj[key]`` if it has one of ``types`` (None allowed when listed); ShapeError if not."""
    name = f"{where}.{key}" if where else key
    if key not in obj:
        if required:
            raise ShapeError(f"{name} is missing")
        return None
    value = obj[key]
    types = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        wanted = " or ".join(_NAMES.get(t, t.__name__) for t in dict.fromkeys(types))
        raise ShapeError(f"{name} is {_what(value)} ({str(value)[:40]!r}), not {wanted}")
    return value


def need_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{where or 'the file'} is {_what(value)}, not an object")
    return value


def string_list(obj: dict[str, Any], key: str, where: str, required: bool = False) -> None:
    items = field(obj, key, (list, type(None)), where, required)
    for i, item in enumerate(items or []):
        if not isinstance(item, str):
            raise ShapeError(f"{where}.{key}[{i}] is {_what(item)}, not a string")


OPTIONAL_STR = (str, type(None))


def check_outcome(d: Any, where: str) -> None:
    """One probe's recorded outcome (runner.ProbeOutcome.to_dict)."""
    need_dict(d, where)
    field(d, "target", str, where, required=True)
    field(d, "ok", bool, where, required=True)
    field(d, "data", dict, where)
    for key in ("failure", "error"):
        field(d, key, OPTIONAL_STR, where)
    field(d, "user_error", bool, where)
    field(d, "seconds", NUMBER, where)
    for key in ("stderr_tail", "stderr"):
        field(d, key, str, where)


def _gpu_list(data: dict[str, Any], key: str, where: str) -> None:
    for i, g in enumerate(field(data, key, (list, type(None)), where) or []):
        gat = f"{where}.{key}[{i}]"
        need_dict(g, gat)
        field(g, "index", (int, type(None)), gat)
        for name in ("name", "uuid", "compute_capability"):
            field(g, name, OPTIONAL_STR, gat)
        cc = g.get("compute_capability")
        if cc is not None and not re.fullmatch(r"\d{1,2}\.\d{1,2}", cc):
            raise ShapeError(f"{gat}.compute_capability is {cc[:20]!r}, not MAJOR.MINOR (8.0)")


def _probe_data(name: str, data: dict[str, Any], where: str) -> None:
    """The fields of a probe's data that envcheck reads directly (the rest is per check)."""
    if name == "environment":
        for key in ("python", "platform", "variables", "conda_packages"):
            field(data, key, (dict, type(None)), where)
        for key in ("conda_prefix", "pixi_environment", "pixi_project_root"):
            field(data, key, OPTIONAL_STR, where)
        for key in ("ld_library_path", "shadowing"):
            field(data, key, (list, type(None)), where)
        for key, value in (data.get("variables") or {}).items():
            if not isinstance(value, str):
                raise ShapeError(f"{where}.variables.{key} is {_what(value)}, not a string")
    elif name == "nvml":
        field(data, "available", (bool, type(None)), where)
        for key in ("driver_version", "cuda_driver_version"):
            field(data, key, OPTIONAL_STR, where)
        _gpu_list(data, "gpus", where)
    elif name.endswith(".facts"):
        field(data, "version", OPTIONAL_STR, where)
        field(data, "device_count", (int, type(None)), where)
        _gpu_list(data, "devices", where)


def check_recording(raw: Any) -> None:
    """What ``verify --save-facts`` writes."""
    need_dict(raw, "")
    field(raw, "profile", OPTIONAL_STR, "")
    string_list(raw, "frameworks", "")
    field(raw, "require_gpu", bool, "")
    field(raw, "no_training", bool, "")
    facts = field(raw, "facts", dict, "", required=True)
    for name, outcome in facts.items():
        check_outcome(outcome, f"facts.{name}")
        _probe_data(name, outcome.get("data") or {}, f"facts.{name}.data")


def check_doctor_facts(facts: Any, where: str = "facts") -> None:
    """The machine facts of a ``doctor --json`` answer."""
    need_dict(facts, where)
    plat = field(facts, "platform", dict, where, required=True)
    for key in ("system", "machine", "subdir"):
        field(plat, key, str, f"{where}.platform", required=True)
    for key in ("glibc", "osx", "python"):
        field(plat, key, OPTIONAL_STR, f"{where}.platform")
    nvml = field(facts, "nvml", (dict, type(None)), where)
    if nvml is None:
        return
    at = f"{where}.nvml"
    field(nvml, "available", bool, at)
    for key in ("reason", "error", "binding", "driver_version", "cuda_driver_version"):
        field(nvml, key, OPTIONAL_STR, at)
    _gpu_list(nvml, "gpus", at)
    for i, g in enumerate(nvml.get("gpus") or []):
        field(g, "mig_mode", (bool, type(None)), f"{at}.gpus[{i}]")


def check_report(d: Any) -> None:
    """A verify report (envcheck/report/schema.json), the fields ``envcheck report`` reads."""
    need_dict(d, "")
    for key in ("profile", "envcheck_version", "started_at"):
        field(d, key, str, "", required=True)
    string_list(d, "frameworks", "", required=True)
    field(d, "require_gpu", bool, "", required=True)
    field(d, "environment", dict, "", required=True)
    field(d, "duration_s", NUMBER, "", required=True)
    cats = field(d, "categories", list, "", required=True)
    for i, cat in enumerate(cats):
        cw = f"categories[{i}]"
        need_dict(cat, cw)
        field(cat, "name", str, cw, required=True)
        for j, c in enumerate(field(cat, "checks", list, cw, required=True)):
            at = f"{cw}.checks[{j}]"
            need_dict(c, at)
            for key in ("name", "status", "message"):
                field(c, key, str, at, required=True)
            for key in ("cause", "fix"):
                field(c, key, OPTIONAL_STR, at)
            field(c, "duration_s", (*NUMBER, type(None)), at)
            field(c, "figures", (dict, type(None)), at)
            string_list(c, "follows", at)  # the root causes a failure follows from
            for k, dev in enumerate(field(c, "devices", (list, type(None)), at) or []):
                dat = f"{at}.devices[{k}]"
                need_dict(dev, dat)
                for key in ("device", "status", "message"):
                    field(dev, key, str, dat, required=True)
                for key in ("cause", "fix"):
                    field(dev, key, OPTIONAL_STR, dat)
                field(dev, "figures", (dict, type(None)), dat)
