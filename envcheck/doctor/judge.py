"""Which environment fits: pure rules over the machine facts and the lock's rows.

Each env x platform gets a verdict, FITS, WARN (fits, with something to know) or NO, with
the reasons; then one environment is recommended. Plain data in, plain data out, so tests
replay any machine.
"""

from __future__ import annotations

from typing import Any

from ..diagnose import MIN_DRIVER
from ..gpuarch import parse_capability, runs_on, sm_name
from . import archlists
from .workspace import FRAMEWORK_PACKAGES, version_key

FITS, WARN, NO = "fits", "warn", "no"
LABEL = {"torch": "PyTorch", "tensorflow": "TensorFlow"}


def _gpus(nvml: dict[str, Any]) -> list[dict[str, Any]]:
    return list(nvml.get("gpus") or []) if nvml.get("available") else []


def _gpu_label(g: dict[str, Any]) -> str:
    cc = g.get("compute_capability")
    arch = f" ({sm_name(cc)})" if cc else ""
    return f"GPU {g.get('index')} {g.get('name')}{arch}"


def is_cuda_row(row: dict[str, Any]) -> bool:
    builds = [p.get("build", "") for p in row["packages"].values()]
    return bool(row.get("cuda_driver_min")) or any(b.startswith("cuda") for b in builds)


def _platform_reasons(row: dict[str, Any], plat: dict[str, Any]) -> list[str]:
    """Reasons the machine itself (not its GPUs) rules this row out."""
    if row["subdir"] != plat["subdir"]:
        return [f"built for {row['subdir']}; this machine is {plat['subdir']}"]
    out = []
    need, have = row.get("glibc_min"), plat.get("glibc")
    if need and plat["system"] == "linux":
        if not have:
            out.append(f"the C library is not glibc; the builds need glibc >= {need}")
        elif version_key(have) < version_key(need):
            out.append(f"glibc {have} is older than the {need} the lock's packages need (__glibc)")
    need, have = row.get("osx_min"), plat.get("osx")
    if need and have and version_key(have) < version_key(need):
        out.append(f"macOS {have} is older than the {need} the lock's packages need (__osx)")
    return out


def _driver_reason(row: dict[str, Any], nvml: dict[str, Any]) -> str | None:
    need = row.get("cuda_driver_min")
    have = nvml.get("cuda_driver_version")
    if not need or not have or version_key(have) >= version_key(need):
        return None
    major = version_key(need)[0]
    return (
        f"NVIDIA driver {nvml.get('driver_version')} supports CUDA {have}; CUDA {major} builds "
        f"need CUDA >= {need} (driver >= {MIN_DRIVER.get(major, '?')})"
    )


def _arch_findings(
    row: dict[str, Any], gpus: list[dict[str, Any]], nvml: dict[str, Any]
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(blocking reasons, warnings, per framework x GPU detail) from the builds' arch lists."""
    reasons: list[str] = []
    warnings: list[str] = []
    detail: list[dict[str, Any]] = []
    for pkg, fw in FRAMEWORK_PACKAGES.items():
        rec = row["packages"].get(pkg)
        if not rec or not rec["build"].startswith("cuda"):
            continue
        build_name = f"{LABEL[fw]} {rec['version']} ({rec['build']})"
        entry = archlists.lookup(
            pkg, rec["version"], rec["build"], row["subdir"], rec.get("depends", ())
        )
        if entry is None:
            warnings.append(
                f"{build_name}: its GPU architecture list is not recorded "
                "(envcheck/doctor/archlists.json); verify checks it after install"
            )
            continue
        targets = archlists.targets_of(entry)
        build_cuda = archlists.cuda_of_build(rec["build"])
        for g in gpus:
            cc = g.get("compute_capability")
            if not cc:
                warnings.append(f"{_gpu_label(g)}: compute capability unknown (NVML)")
                continue
            match = runs_on(targets, cc)
            detail.append(
                {
                    "framework": fw,
                    "gpu": g.get("index"),
                    "sm": sm_name(cc),
                    "runs_as": match.describe() if match else None,
                    "targets": targets,
                    "source": entry["source"],
                }
            )
            if match is None:
                reasons.append(
                    f"{_gpu_label(g)} is not in the {build_name} architecture list "
                    f"({' '.join(targets)})"
                )
            elif match.ptx and match.target.cc // 10 < parse_capability(cc) // 10:
                # CUDA would JIT the PTX across GPU generations, but the build's own CUDA
                # libraries (cuDNN, cuBLAS) predate the GPU: treat it as not carrying it.
                reasons.append(
                    f"{_gpu_label(g)} has no code in {build_name}: only {match.target.name} "
                    f"PTX of an older GPU generation ({' '.join(targets)})"
                )
            elif match.ptx and version_key(nvml.get("cuda_driver_version")) < version_key(
                build_cuda
            ):
                reasons.append(
                    f"{_gpu_label(g)} would need {build_name}'s {match.target.name} PTX, which "
                    f"a driver for CUDA {nvml.get('cuda_driver_version')} cannot compile "
                    f"(built with CUDA {build_cuda})"
                )
            elif match.ptx:
                warnings.append(
                    f"{_gpu_label(g)} runs {build_name} only as {match.describe()} at first use "
                    "(no code for it in the build: slow start, maybe slower kernels)"
                )
    return reasons, warnings, detail


def judge_row(row: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    plat, nvml = facts["platform"], facts.get("nvml") or {}
    gpus = _gpus(nvml)
    reasons = _platform_reasons(row, plat)
    warnings: list[str] = []
    detail: list[dict[str, Any]] = []
    cuda = is_cuda_row(row)
    if not reasons and cuda:
        if not gpus and nvml.get("reason") == "probe_failed":
            reasons.append(
                f"NVML did not answer ({nvml.get('error')}): the driver and GPUs cannot be "
                "read, so a CUDA env cannot be verified here"
            )
        elif not gpus:
            why = nvml.get("error") or "the driver reports no GPU"
            reasons.append(f"no NVIDIA GPU ({why}): a CUDA env cannot be verified here")
        else:
            driver = _driver_reason(row, nvml)
            reasons += [driver] if driver else []
            blocking, warnings, detail = _arch_findings(row, gpus, nvml)
            reasons += blocking
            for g in gpus:
                if g.get("mig_mode"):
                    warnings.append(
                        f"{_gpu_label(g)} is in MIG mode: each process sees one MIG "
                        "instance (pick it with CUDA_VISIBLE_DEVICES=MIG-<uuid>)"
                    )
    notes = []
    if not row["frameworks"]:
        notes.append("no framework in this env (tools only)")
    elif not reasons and not cuda and gpus:
        notes.append("CPU builds: the GPU(s) stay unused")
    status = NO if reasons else WARN if warnings else FITS
    return {
        "env": row["env"],
        "platform": row["platform"],
        "subdir": row["subdir"],
        "cuda": row["cuda"] if cuda else None,
        "frameworks": row["frameworks"],
        "versions": {
            FRAMEWORK_PACKAGES[p]: r["version"]
            for p, r in row["packages"].items()
            if p in FRAMEWORK_PACKAGES
        },
        "status": status,
        "reasons": reasons,
        "warnings": warnings,
        "notes": notes,
        "gpu_detail": detail,
    }


def _rank(v: dict[str, Any], wanted: tuple[str, ...]) -> tuple:
    # Newest CUDA line first (a CPU env ranks below every CUDA env). Then: asked for frameworks,
    # the env with the fewest others (it carries their newest builds); else the most frameworks.
    # Then the newest build of the first framework, a clean fit; `default` repeats a named env.
    others = len(set(v["frameworks"]) - set(wanted))
    first = (wanted or ("torch",))[0]
    return (
        version_key(v["cuda"]) if v["cuda"] else (),
        -others if wanted else len(v["frameworks"]),
        version_key(v["versions"].get(first)),
        v["status"] == FITS,
        v["env"] != "default",
    )


def recommend(
    verdicts: list[dict[str, Any]], wanted: tuple[str, ...] = ()
) -> tuple[dict[str, Any] | None, str]:
    """The one env to install, and why (or None and why nothing fits)."""
    usable = [v for v in verdicts if v["status"] != NO and v["frameworks"]]
    if wanted:
        with_wanted = [v for v in usable if set(wanted) <= set(v["frameworks"])]
        if not with_wanted:
            names = ", ".join(LABEL[w] for w in wanted)
            return None, f"no environment with {names} fits this machine"
        usable = with_wanted
    if not usable:
        return None, "no environment of the lock fits this machine"
    best = max(usable, key=lambda v: _rank(v, wanted))
    if best["cuda"]:
        why = f"the newest CUDA line ({best['cuda']}) that every GPU of this machine can run"
    elif any(v["cuda"] for v in verdicts if v["subdir"] == best["subdir"]):
        why = "no CUDA environment fits this machine (see the reasons above); CPU builds do"
    else:
        why = "the CPU builds for this platform"
    if wanted:
        why += f", with {', '.join(LABEL[w] for w in wanted)}"
    return best, why


def diagnose_machine(
    facts: dict[str, Any], workspace: dict[str, Any], wanted: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The whole answer as data: verdicts, recommendation, commands, exit code."""
    verdicts = [judge_row(row, facts) for row in workspace["rows"]]
    best, why = recommend(verdicts, wanted)
    health = gpu_health(facts.get("nvml") or {})
    commands = (
        [f"pixi install --locked -e {best['env']}", f"pixi run --locked -e {best['env']} verify"]
        if best
        else []
    )
    return {
        "facts": facts,
        "lock": workspace["lock"],
        "frameworks_wanted": list(wanted),
        "verdicts": verdicts,
        "recommended": best["env"] if best else None,
        "recommended_platform": best["platform"] if best else None,
        "why": why,
        "commands": commands,
        "health": health,
        "exit_code": 0 if best else 1,
    }


def gpu_health(nvml: dict[str, Any]) -> list[dict[str, Any]]:
    """verify's health rules over the NVML facts doctor read (at idle: no framework runs the
    GPU here, so clocks and the PCIe link are read but not loaded). One row per GPU x aspect."""
    from ..checks.health import ASPECTS, fix_for_gpu, judge_machine

    if not nvml.get("available"):
        return []
    rows = []
    for aspect, verdicts in judge_machine(nvml).items():
        for g, v in verdicts:
            rows.append(
                {
                    "gpu": g.get("index"),
                    "uuid": g.get("uuid"),
                    "check": f"health.{aspect}",
                    "title": ASPECTS[aspect],
                    "status": v.status.value,
                    "message": v.message,
                    "cause": v.cause,
                    "fix": fix_for_gpu(v.fix, g.get("index")),
                }
            )
    return rows
