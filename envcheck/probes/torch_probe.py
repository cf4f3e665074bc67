"""PyTorch facts and kernels. Imported only inside a probe subprocess."""

from __future__ import annotations

import time
from typing import Any

from envcheck.phases import phase


def _cuda_init_error(torch) -> str | None:
    """Why CUDA is unusable, in the driver's words (is_available() only says False)."""
    try:
        torch.cuda.init()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()


def facts(args: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    with phase("import"):
        import torch

    out: dict[str, Any] = {
        "import_seconds": time.perf_counter() - start,
        "version": torch.__version__,
        "file": torch.__file__,
        "cuda_build": torch.version.cuda,
        "cuda_available": False,
        "device_count": 0,
        "devices": [],
    }
    if torch.version.cuda is None:
        return out
    out["arch_list"] = torch.cuda.get_arch_list()
    out.update(_cudnn_facts(torch))
    out["nccl"] = _safe(lambda: ".".join(map(str, torch.cuda.nccl.version())))
    with phase("init"):  # creates the CUDA context (once per process)
        out["init_error"] = _cuda_init_error(torch)
    out["cuda_available"] = torch.cuda.is_available()
    if out["cuda_available"]:
        out["device_count"] = torch.cuda.device_count()
        for i in range(out["device_count"]):
            p = torch.cuda.get_device_properties(i)
            out["devices"].append(
                {
                    "index": i,
                    "name": p.name,
                    "compute_capability": f"{p.major}.{p.minor}",
                    "sm": f"sm_{p.major}{p.minor}",
                    "memory_total_mib": p.total_memory // 2**20,
                    "multiprocessors": p.multi_processor_count,
                    "uuid": str(getattr(p, "uuid", "")) or None,
                }
            )
    return out


def _cudnn_facts(torch) -> dict[str, Any]:
    """cuDNN as torch reports it: compiled and loaded as tuples, version() as an int.

    version() raises when torch finds the loaded cuDNN incompatible (its own rule), and only
    on the first call: later calls return the int. So it is called once, here, first.
    """
    out: dict[str, Any] = {
        "cudnn_compile": _safe(lambda: torch._C._cudnn.getCompileVersion()),
        "cudnn_loaded": _safe(lambda: torch._C._cudnn.getRuntimeVersion()),
        "cudnn_runtime": None,
        "cudnn_error": None,
    }
    try:
        out["cudnn_runtime"] = torch.backends.cudnn.version()
    except Exception as exc:  # torch's compatibility verdict, in its own words
        out["cudnn_error"] = f"{type(exc).__name__}: {exc}".strip()[:600]
    return out


def _safe(fn):
    try:
        value = fn()
    except Exception:
        return None
    return list(value) if isinstance(value, tuple) else value


def _devices(torch, args) -> list[str]:
    if args.get("device") == "cpu" or not torch.cuda.is_available():
        return ["cpu"]
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _matmul_check(torch, device: str, n: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    a64 = torch.randn(n, n, generator=gen, dtype=torch.float64)
    b64 = torch.randn(n, n, generator=gen, dtype=torch.float64)
    ref = a64 @ b64
    got = (a64.float().to(device) @ b64.float().to(device)).double().cpu()
    rel = float((got - ref).norm() / ref.norm())
    tf32 = device.startswith("cuda") and torch.backends.cuda.matmul.allow_tf32
    # fp32 accumulation error grows ~sqrt(n)*eps; TF32 keeps a 10-bit mantissa (eps ~1e-3)
    tol = 5e-3 if tf32 else 1e-5
    return {"rel_error": rel, "tolerance": tol, "tf32": tf32, "ok": rel <= tol}


def _tflops(torch, device: str, n: int, dtype, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(torch, device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(torch, device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def _conv_check(torch, device: str) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 32, 32, generator=gen, dtype=torch.float64)
    w = torch.randn(16, 3, 3, 3, generator=gen, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x, w, padding=1)
    got = torch.nn.functional.conv2d(x.float().to(device), w.float().to(device), padding=1)
    rel = float((got.double().cpu() - ref).norm() / ref.norm())
    return {
        "rel_error": rel,
        "tolerance": 5e-3,
        "ok": rel <= 5e-3,
        "cudnn": device.startswith("cuda") and torch.backends.cudnn.is_acceptable(got),
    }


def _autocast_check(torch, device: str) -> dict[str, Any]:
    from envcheck.training import low_precision

    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    gpu = dev_type == "cuda"
    dtype = getattr(
        torch, low_precision(gpu, torch.cuda.get_device_capability(device) if gpu else None)
    )
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(256, 256, generator=gen).to(device)
    b = torch.randn(256, 256, generator=gen).to(device)
    with torch.autocast(device_type=dev_type, dtype=dtype):
        out = a @ b
    ref = (a.double() @ b.double()).cpu()
    rel = float((out.double().cpu() - ref).norm() / ref.norm())
    # bf16 keeps 8 mantissa bits: ~4e-3 relative per element, less after averaging
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "out_dtype": str(out.dtype).replace("torch.", ""),
        "rel_error": rel,
        "tolerance": 2e-2,
        "ok": rel <= 2e-2 and out.dtype == dtype,
    }


def kernels(args: dict[str, Any]) -> dict[str, Any]:
    with phase("import"):
        import torch

    results = []
    for device in _devices(torch, args):
        gpu = device.startswith("cuda")
        n = 4096 if gpu else 512
        entry: dict[str, Any] = {"device": device}
        if gpu:
            entry["name"] = torch.cuda.get_device_name(device)
        entry["matmul"] = _matmul_check(torch, device, 1024 if gpu else 256)
        entry["conv2d"] = _conv_check(torch, device)
        entry["autocast"] = _autocast_check(torch, device)
        entry["tflops_fp32"] = _tflops(torch, device, n, torch.float32, 20 if gpu else 3)
        if gpu:
            entry["tflops_bf16"] = _tflops(torch, device, n, torch.bfloat16, 20)
        results.append(entry)
    out: dict[str, Any] = {"devices": results}
    gpus = [d for d in _devices(torch, args) if d.startswith("cuda")]
    if gpus:
        out["load_health"] = _load_health(torch, gpus)
    return out


LOAD_SECONDS = 2.0  # long enough for clocks, power and the link to settle under load


def _burn(torch, devices: list[str], seconds: float, n: int = 4096) -> None:
    """Half-precision matmuls on every GPU at once, with host-to-GPU copies (links train up
    under traffic), for ``seconds``: the load the health readings are taken under."""
    work = []
    for d in devices:
        a = torch.randn(n, n, device=d).half()
        host = torch.empty(64 * 2**20, dtype=torch.uint8)
        if d.startswith("cuda"):  # pinned: the copy is a real DMA over the link
            host = host.pin_memory()
        work.append((d, a, host, torch.empty_like(host, device=d)))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _, a, host, dev in work:
            for _ in range(8):
                a @ a
            dev.copy_(host, non_blocking=True)
        for d, *_ in work:
            _sync(torch, d)


def _load_health(torch, devices: list[str]) -> dict[str, Any]:
    """NVML's health readings (clock event reasons, PCIe link, temperature, power) sampled
    while every GPU is loaded; judged by envcheck.checks.health. Never fails the kernels."""
    from envcheck.probes.health import sample_while

    try:
        uuids = [str(torch.cuda.get_device_properties(d).uuid) for d in devices]
    except Exception:  # a torch without .uuid: which NVML GPU ran the load is then unknown
        uuids = None
    try:
        return sample_while(lambda: _burn(torch, devices, LOAD_SECONDS), uuids)
    except Exception as exc:
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def device_assert(args: dict[str, Any]) -> dict[str, Any]:
    """A failing device-side assert must surface as an error, not pass silently.

    Its own process: after a device assert the CUDA context is unusable. Whatever is raised is
    recorded as it is (type, CUDA error code, first line): out of memory, "no kernel image" or
    a broken context are RuntimeErrors too, and the check tells them from the assert.
    """
    with phase("import"):
        import torch

    if not torch.cuda.is_available():
        return {"ran": False}
    try:
        torch._assert_async(torch.tensor(0, device="cuda:0"))
        torch.cuda.synchronize()
    except Exception as exc:
        return {"ran": True, **raised(exc)}
    return {"ran": True, "raised": False}


def raised(exc: BaseException) -> dict[str, Any]:
    """An exception as plain facts: its class, CUDA's error code (torch >= 2.8's
    AcceleratorError carries one as .error_code) and its first non-empty line."""
    code = getattr(exc, "error_code", None)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return {
        "raised": True,
        "error_type": type(exc).__name__,
        "error_code": code if isinstance(code, int) and not isinstance(code, bool) else None,
        "error": (lines[0] if lines else "")[:300],
    }
