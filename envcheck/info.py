"""`envcheck info`: the environment report alone, asked of the frameworks and NVML.

collect_env reads nvcc on PATH and cuDNN from ldconfig, both wrong inside a conda/pixi env;
this asks the loaded libraries themselves.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from . import diagnose
from .checks import Context


def gather_info(ctx: Context) -> dict[str, Any]:
    """Plain data first (PyTorch collect_env's split); rendering comes after."""
    info: dict[str, Any] = {"environment": ctx.outcome("environment").data}
    names = ["nvml"] + [f"{fw}.facts" for fw in ctx.frameworks] + ["compile.toolchain"]
    for name in names:
        o = ctx.outcome(name)
        info[name] = o.data if o.ok else {"error": o.describe_failure()}
        module = name.split(".")[0]
        if not o.ok and f"No module named '{module}'" in (o.error or ""):
            info[name]["missing"] = True  # not installed: say so, not the raw exception
    return info


def _failed(name: str, module: str, facts: dict[str, Any]) -> str:
    """One line for a framework whose facts could not be read."""
    if facts.get("missing"):
        return (
            f"not installed in this Python; leave it out with --framework "
            f"(or ENVCHECK_FRAMEWORKS), or install {module}"
        )
    lines = str(facts["error"]).strip().splitlines() or ["failed"]
    return f"{name} could not be read: {lines[-1]}"  # the exception's last line, no traceback


def _rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    env = info["environment"]
    rows = [
        ("Python", f"{env['python']['version']} ({env['python']['executable']})"),
        ("Platform", f"{env['platform']['system']} {env['platform']['machine']}"),
        ("Env", f"{env.get('pixi_environment') or '-'} at {env.get('conda_prefix') or '-'}"),
    ]
    for name, pkg in sorted(env.get("conda_packages", {}).items()):
        rows.append((f"  conda {name}", f"{pkg['version']} ({pkg['build']})"))
    for key, value in sorted(env.get("variables", {}).items()):
        rows.append((f"  ${key}", value))
    if env.get("shadowing"):
        rows.append(("LD_LIBRARY_PATH shadows", "; ".join(s["path"] for s in env["shadowing"])))
    nvml = info.get("nvml", {})
    if nvml.get("available"):
        rows.append(
            ("NVIDIA driver", f"{nvml['driver_version']} (CUDA {nvml['cuda_driver_version']})")
        )
        for g in nvml["gpus"]:
            rows.append(
                (
                    f"  GPU {g['index']}",
                    f"{g['name']} cc {g['compute_capability']}, "
                    f"{g['memory_total_mib']} MiB, MIG {'on' if g['mig_mode'] else 'off'}, "
                    f"mode {g['compute_mode']}",
                )
            )
    else:
        rows.append(("NVIDIA driver", nvml.get("error") or "not found"))
    box = env.get("container") or {}
    if box.get("runtime"):
        if diagnose.container_without_gpu(env, nvml):
            access = f"no GPU access (for GPUs start it with {box.get('gpu_flag')})"
        else:
            access = "GPU devices: " + (", ".join(box.get("nvidia_devices") or []) or "none")
        rows.append(("Container", f"{box['runtime']}, {access}"))
    t = info.get("torch.facts")
    if t is not None:
        rows.append(
            (
                "PyTorch",
                _failed("PyTorch", "torch", t)
                if t.get("error")
                else f"{t['version']}, CUDA build {t.get('cuda_build') or 'none (CPU)'}",
            )
        )
        if t.get("cuda_build"):
            rows.append(
                ("  cuDNN runtime/compiled", f"{t.get('cudnn_runtime')} / {t.get('cudnn_compile')}")
            )
            rows.append(("  NCCL", str(t.get("nccl"))))
            rows.append(("  arch list", " ".join(t.get("arch_list") or [])))
            rows.append(
                (
                    "  CUDA available",
                    f"{t.get('cuda_available')} {t.get('init_error') or ''}".strip(),
                )
            )
            for d in t.get("devices", []):
                rows.append((f"  cuda:{d['index']}", f"{d['name']} ({d['sm']})"))
    tf = info.get("tensorflow.facts")
    if tf is not None:
        if tf.get("error"):
            rows.append(("TensorFlow", _failed("TensorFlow", "tensorflow", tf)))
        else:
            b = tf.get("build_info", {})
            cuda = b.get("cuda_version") or "none (CPU)"
            rows.append(
                (
                    "TensorFlow",
                    f"{tf['version']}, CUDA build {cuda}, cuDNN "
                    f"{b.get('cudnn_version') or '-'}; keras {tf['keras'].get('version')}",
                )
            )
            rows.append(("  GPUs", ", ".join(d["name"] or "?" for d in tf["devices"]) or "none"))
    # tool output is outside text: render_info prints every row as plain Text (guard)
    rows.extend(_toolchain_rows(info.get("compile.toolchain")))
    return rows


def _toolchain_rows(tc: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What torch.compile and XLA would use: C/C++ compilers, Triton, ptxas."""
    if tc is None:
        return []
    if tc.get("error"):
        return [("Compilers", str(tc["error"]))]
    rows = []
    for lang, label in (("c", "C compiler"), ("cxx", "C++ compiler")):
        c = tc.get(lang) or {}
        if c.get("path"):
            state = "" if c.get("works") else f" (not working: {c.get('error')})"
            rows.append((label, f"{c.get('version') or '?'} ({c['path']}){state}"))
        else:
            rows.append((label, f"none found (looked for {', '.join(c.get('looked_for') or [])})"))
    t = tc.get("triton") or {}
    triton = t.get("version") or "not installed"
    if t.get("required"):
        triton += f" (PyTorch pins {t['required']})"
    rows.append(("Triton", triton))
    p = tc.get("ptxas") or {}
    rows.append(("ptxas", f"{p.get('version')} ({p['path']})" if p.get("path") else "not found"))
    return rows


def render_info(info: dict[str, Any], console: Console) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    from .guard import safe_text

    for key, value in _rows(info):  # values come from the machine (GPU names, paths)
        table.add_row(safe_text(key), safe_text(value))
    console.print(table)
