"""Facts in the shape real machines give, healthy and broken, for replaying through the checks.

Each builder returns {probe name: outcome dict} in the shape envcheck.runner writes
(``envcheck verify --save-facts``), so the checks see exactly what a live run would give.
These are hand-written (no GPU machine has recorded facts yet): every value has the type and
form the real API returns (torch's cuDNN compile/loaded versions as tuples, version() as an
int; NVML's CUDA version decoded from 13000; PyTorch's and TensorFlow's own error texts).
"""

from __future__ import annotations

import copy
from typing import Any

H100 = {
    "index": 0,
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-8d1c2f4e-5a6b-7c8d-9e0f-0123456789ab",  # NVML: GPU- and 36 characters
    "compute_capability": "9.0",
    "memory_total_mib": 81559,
    "memory_used_mib": 0,
    "mig_mode": False,
    "compute_mode": "default",
    "persistence_mode": 1,
    "processes": 0,
    "retired_pages_pending": 0,
    # envcheck.probes.health.read_gpu at idle: an SXM H100 has ECC and a row remapper
    "health": {
        "ecc_mode": 1,
        "ecc_errors": {
            "volatile_corrected": 0,
            "volatile_uncorrected": 0,
            "aggregate_corrected": 0,
            "aggregate_uncorrected": 0,
        },
        "remapped_rows": {"corrected": 0, "uncorrected": 0, "pending": False, "failed": False},
        "retired_pages": None,
        "persistence_mode": 1,
        "clock_event_reasons": 0x1,
        "pcie": {"gen": 1, "width": 16, "max_gen": 5, "max_width": 16},
        "temperature_c": 33,
        "power_w": 71.4,
        "temperature_slowdown_c": 87,
        "temperature_shutdown_c": 92,
        "power_limit_w": 700.0,
        "unsupported": ["retired_pages"],
        "errors": {},
    },
}


def _ok(target: str, data: dict[str, Any], stderr: str = "") -> dict[str, Any]:
    return {
        "target": target,
        "ok": True,
        "data": data,
        "failure": None,
        "error": None,
        "user_error": False,
        "seconds": 1.0,
        "stderr_tail": stderr[-300:],
        "stderr": stderr,
    }


def healthy_cuda12() -> dict[str, Any]:
    """A working cuda12 env on an H100 (driver 580, CUDA 13.0)."""
    env = {
        "python": {
            "version": "3.12.11",
            "implementation": "CPython",
            "executable": "/lab/.pixi/envs/cuda12/bin/python",
        },
        "platform": {"system": "Linux", "machine": "x86_64", "release": "6.8.0"},
        "conda_prefix": "/lab/.pixi/envs/cuda12",
        "python_in_prefix": True,
        "pixi_environment": "cuda12",
        "pixi_project_root": None,
        "ld_library_path": [],
        "shadowing": [],
        "variables": {"ENVCHECK_PROFILE": "cuda12"},
        "conda_packages": {
            "pytorch": {"version": "2.9.1", "build": "cuda129_mkl_py312_h1"},
            "cudnn": {"version": "9.10.2.21", "build": "hbcb9cd8_0"},
        },
    }
    nvml = {
        "available": True,
        "binding": "nvidia-ml-py",
        "system": "linux",
        "uptime_s": 86400.0,
        "driver_version": "580.159.04",
        "cuda_driver_version": "13.0",
        "gpus": [dict(H100)],
    }
    torch = {
        "import_seconds": 1.2,
        "version": "2.9.1",
        "file": "x",
        "cuda_build": "12.9",
        "cuda_available": True,
        "device_count": 1,
        "arch_list": [
            "sm_50",
            "sm_60",
            "sm_70",
            "sm_75",
            "sm_80",
            "sm_86",
            "sm_89",
            "sm_90",
            "sm_100",
            "sm_120",
            "compute_120",
        ],
        # torch._C._cudnn.getCompileVersion() / getRuntimeVersion() are tuples (JSON lists);
        # torch.backends.cudnn.version() is an int
        "cudnn_compile": [9, 10, 2],
        "cudnn_loaded": [9, 10, 2],
        "cudnn_runtime": 91002,
        "cudnn_error": None,
        "nccl": "2.27.7",
        "init_error": None,
        "devices": [
            {
                "index": 0,
                "name": H100["name"],
                "compute_capability": "9.0",
                "sm": "sm_90",
                "memory_total_mib": 81559,
                "multiprocessors": 132,
                "uuid": "8d1c2f4e-5a6b-7c8d-9e0f-0123456789ab",  # torch: the UUID alone
            }
        ],
    }
    tf = {
        "import_seconds": 3.0,
        "version": "2.19.1",
        "file": "x",
        "keras": {"ok": True, "version": "3.10.0", "seconds": 0.0},
        "build_info": {
            "cuda_version": "12.8",
            "cudnn_version": "9",
            "is_cuda_build": True,
            "cuda_compute_capabilities": ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"],
        },
        "is_cuda_build": True,
        "built_with_cuda": True,
        "devices": [{"index": 0, "name": H100["name"], "compute_capability": "9.0"}],
    }
    science = {
        "modules": {
            m: {"ok": True, "version": "1.0", "seconds": 0.1}
            for m in ("numpy", "scipy", "pandas", "matplotlib")
        }
    }
    return {
        "environment": _ok("environment", env),
        "nvml": _ok("envcheck.probes.nvml:gather", nvml),
        "science": _ok("envcheck.probes.science:gather", science),
        "torch.facts": _ok("envcheck.probes.torch_probe:facts", torch),
        "tensorflow.facts": _ok("envcheck.probes.tf_probe:facts", tf),
    }


# What torch_probe.facts returns for a CPU build of PyTorch: it stops before the CUDA facts
# (no arch_list, cuDNN, NCCL or init_error keys).
CPU_TORCH_KEYS = ("import_seconds", "version", "file", "cuda_build", "cuda_available",
                  "device_count", "devices")  # fmt: skip


def cpu_torch(facts: dict[str, Any], version: str = "2.9.1") -> dict[str, Any]:
    """``facts`` with its torch facts replaced by a CPU build's, in the probe's exact shape."""
    data = facts["torch.facts"]["data"]
    data.update(version=version, cuda_build=None, cuda_available=False, device_count=0,
                devices=[])  # fmt: skip
    facts["torch.facts"]["data"] = {k: data[k] for k in CPU_TORCH_KEYS}
    return facts


def broken(**changes: Any) -> dict[str, Any]:
    """healthy_cuda12() with ``probe__key=value`` changes applied to the probes' data."""
    facts = copy.deepcopy(healthy_cuda12())
    for path, value in changes.items():
        probe, key = path.split("__")
        probe = probe.replace("_", ".") if probe in ("torch_facts", "tensorflow_facts") else probe
        facts[probe]["data"][key] = value
    return facts
