"""TensorFlow/Keras facts and kernels. Imported only inside a probe subprocess."""

from __future__ import annotations

import os
import time
from typing import Any

from envcheck.phases import phase


def log_library_loads() -> None:
    """Make TF name the GPU libraries it cannot load, on stderr, for the parent to read.

    TF (xla/tsl dso_loader.cc) logs "Could not load dynamic library 'libcudnn.so.9'; dlerror:
    ..." only as VLOG(1), and VLOG lines need INFO logging on; its WARNING "Cannot dlopen some
    GPU libraries" names none. So: INFO on, level 1 for dso_loader alone, in this process only.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    vmodule = os.environ.get("TF_CPP_VMODULE")
    os.environ["TF_CPP_VMODULE"] = f"{vmodule},dso_loader=1" if vmodule else "dso_loader=1"


def facts(args: dict[str, Any]) -> dict[str, Any]:
    log_library_loads()  # before TF reads its logging settings, at import
    start = time.perf_counter()
    with phase("import"):
        import tensorflow as tf

    tf_seconds = time.perf_counter() - start
    start = time.perf_counter()
    try:
        with phase("import"):
            import keras

        keras_info = {
            "ok": True,
            "version": keras.__version__,
            "seconds": time.perf_counter() - start,
        }
    except Exception as exc:
        keras_info = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    build = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in tf.sysconfig.get_build_info().items()
    }
    gpus = tf.config.list_physical_devices("GPU")
    devices = []
    for i, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        cc = details.get("compute_capability")
        devices.append(
            {
                "index": i,
                "name": details.get("device_name"),
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            }
        )
    return {
        "import_seconds": tf_seconds,
        "version": tf.__version__,
        "file": tf.__file__,
        "keras": keras_info,
        "build_info": {k: v for k, v in build.items() if isinstance(v, (str, int, bool, list))},
        "is_cuda_build": bool(build.get("is_cuda_build")),
        "built_with_cuda": tf.test.is_built_with_cuda(),
        "devices": devices,
    }


def _devices(tf, args) -> list[str]:
    if args.get("device") == "cpu":
        return ["/CPU:0"]
    gpus = tf.config.list_physical_devices("GPU")
    return [f"/GPU:{i}" for i in range(len(gpus))] or ["/CPU:0"]


def kernels(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    with phase("import"):
        import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    rng = np.random.default_rng(0)
    results = []
    for device in _devices(tf, args):
        gpu = "GPU" in device
        n = 1024 if gpu else 256
        a = rng.standard_normal((n, n))
        b = rng.standard_normal((n, n))
        ref = a @ b
        x = rng.standard_normal((8, 32, 32, 3))
        w = rng.standard_normal((3, 3, 3, 16))
        with tf.device(device):
            got = tf.linalg.matmul(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()
            conv = tf.nn.conv2d(
                tf.constant(x, tf.float32), tf.constant(w, tf.float32), 1, "SAME"
            ).numpy()
            half = tf.linalg.matmul(tf.constant(a, tf.bfloat16), tf.constant(b, tf.bfloat16))
            half = tf.cast(half, tf.float64).numpy()
        conv_ref = tf.nn.conv2d(tf.constant(x), tf.constant(w), 1, "SAME").numpy()
        tf32 = gpu and tf.config.experimental.tensor_float_32_execution_enabled()
        tol = 5e-3 if tf32 else 1e-5
        rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        conv_rel = float(np.linalg.norm(conv - conv_ref) / np.linalg.norm(conv_ref))
        half_rel = float(np.linalg.norm(half - ref) / np.linalg.norm(ref))
        results.append(
            {
                "device": device,
                "matmul": {"rel_error": rel, "tolerance": tol, "tf32": tf32, "ok": rel <= tol},
                "conv2d": {"rel_error": conv_rel, "tolerance": 5e-3, "ok": conv_rel <= 5e-3},
                "autocast": {
                    "dtype": "bfloat16",
                    "rel_error": half_rel,
                    "tolerance": 2e-2,
                    "ok": half_rel <= 2e-2,
                },
                "tflops_fp32": _tflops(tf, device, 4096 if gpu else 512, 20 if gpu else 3),
            }
        )
    return {"devices": results}


def _tflops(tf, device: str, n: int, reps: int) -> float:
    with tf.device(device):
        a = tf.random.normal((n, n))
        b = tf.random.normal((n, n))
        tf.linalg.matmul(a, b).numpy()
        start = time.perf_counter()
        out = None
        for _ in range(reps):
            out = tf.linalg.matmul(a, b)
        out.numpy()  # forces completion of the queued products
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12
