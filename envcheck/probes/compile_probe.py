"""The compile stack: C/C++ compilers, Triton, ptxas, torch.compile and XLA.

Imported only inside a probe subprocess. ``toolchain`` uses the standard library alone (it is
what `envcheck info` shows); ``torch_compile`` and ``tf_compile`` import their framework.
Every probe function is self-contained: it takes the args dict and returns plain data.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# A compiler's --version or a test build must not hang the probe.
TOOL_TIMEOUT = 30
# Compiled vs eager: float32 on the CPU differs by reassociation only; on a GPU TF32 is off
# (set below), so the same bound holds with room for atomics in the backward reductions.
TOLERANCE = {"cpu": 1e-4, "cuda": 1e-3}
TF_TOLERANCE = 1e-4
CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
# What a C source must do to prove a compiler works: build and link a shared object, as
# Triton's launcher and Inductor's kernels are.
_TEST_SOURCE = "int envcheck_probe(int x) { return x + 1; }\n"


def _first_line(text: str) -> str:
    """A tool's first non-empty line, printable only (it ends up on a terminal)."""
    for line in text.splitlines():
        if line.strip():
            return "".join(ch if ch.isprintable() else "?" for ch in line.strip()[:200])
    return ""


def _run(argv: list[str], cwd: str | None = None) -> tuple[int | None, str]:
    """(exit code or None when it could not run or hung, the end of its output).

    A named CC can be anything: its output is drained and only its end kept (a flood must
    not fill memory), and it is killed after TOOL_TIMEOUT.
    """
    from ..runner import TailReader

    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a hung tool's children die with it
        )
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    tail = TailReader(proc.stdout, keep=4000)
    try:
        proc.wait(timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            proc.kill()
        proc.wait()
        tail.finish()
        return None, f"{_first_line(argv[0])} did not finish in {TOOL_TIMEOUT} s"
    return proc.returncode, tail.finish()


def _search(language: str, environ: dict[str, str]) -> tuple[str | None, list[str], list[str]]:
    """(the variable that names it, the names looked for, the commands to try), in the order
    the compile stack itself uses: Triton (runtime/build.py) takes $CC, else gcc, else clang;
    Inductor (cpp_builder) takes $CXX, else g++ (clang++ on macOS), and cl on Windows."""
    if language == "c":
        var, defaults = "CC", ["gcc", "clang"]
        if os.name == "nt":
            defaults = ["cl", "gcc", "clang"]
    else:
        var = "CXX"
        defaults = ["cl"] if os.name == "nt" else ["clang++" if sys.platform == "darwin" else "g++"]
    value = environ.get(var)
    if value:  # shown in messages: one printable line, bounded
        return var, [f"${var}={_first_line(value)}"], [value]
    return var, [f"${var} (unset)", *defaults], defaults


def _compiler(language: str, environ: dict[str, str], workdir: str) -> dict[str, Any]:
    var, looked_for, commands = _search(language, environ)
    out: dict[str, Any] = {
        "variable": var,
        "from_variable": bool(environ.get(var)),
        "looked_for": looked_for,
        "command": None,
        "path": None,
        "version": None,
        "works": False,
        "error": None,
    }
    for command in commands:
        path = shutil.which(command, path=environ.get("PATH"))
        if path:
            out["command"], out["path"] = command, path
            break
    if not out["path"]:
        named = commands[0] if out["from_variable"] else None
        shown = _first_line(named) if named else ""
        out["error"] = f"${var}={shown!r} is not an executable" if named else "none found"
        return out
    if os.name == "nt" and Path(out["path"]).stem.lower() == "cl":
        code, text = _run([out["path"]])  # cl has no --version; its banner names the version
        out["version"] = _first_line(text)
        out["works"] = code is not None
        return out
    code, text = _run([out["path"], "--version"])
    out["version"] = (_first_line(text) or None) if code is not None else None
    suffix = ".c" if language == "c" else ".cpp"
    src = Path(workdir, f"probe_{language}{suffix}")
    lib = Path(workdir, f"probe_{language}.so")
    src.write_text(_TEST_SOURCE, encoding="utf-8")
    code, text = _run([out["path"], "-shared", "-fPIC", "-o", str(lib), str(src)], cwd=workdir)
    if code == 0 and lib.is_file() and lib.stat().st_size > 0:
        out["works"] = True
    elif code == 0:
        out["error"] = "it exited 0 but wrote no shared object: it is not a compiler"
    else:
        out["error"] = _first_line(text) or f"exit code {code}"
    return out


_TRITON_PIN = re.compile(r"^(?:pytorch-)?triton\s*(?:==\s*|\s)([0-9][0-9A-Za-z.+]*)")


def _triton_required(environ: dict[str, str]) -> str | None:
    """The Triton version the installed PyTorch build pins: conda-forge's pytorch record
    depends on `triton X.Y.Z` (so pixi.lock holds exactly that), PyPI's torch on triton==X."""
    prefix = environ.get("CONDA_PREFIX")
    if prefix:
        for meta in sorted(Path(prefix, "conda-meta").glob("pytorch-[0-9]*.json"))[:4]:
            try:
                import json

                record = json.loads(meta.read_text(encoding="utf-8")[:1_000_000])
                depends = record.get("depends") if isinstance(record, dict) else None
            except (OSError, ValueError):
                continue
            for dep in depends if isinstance(depends, list) else []:
                found = _TRITON_PIN.match(str(dep))
                if found:
                    return found.group(1)
    from importlib import metadata

    try:
        requires = metadata.requires("torch") or []
    except metadata.PackageNotFoundError:
        return None
    for req in requires:
        found = _TRITON_PIN.match(req.split(";")[0].strip())
        if found:
            return found.group(1)
    return None


def _triton(environ: dict[str, str]) -> dict[str, Any]:
    """Triton's version from its metadata, without importing it (no CUDA init here)."""
    from importlib import metadata

    out: dict[str, Any] = {"installed": False, "version": None, "distribution": None}
    for dist in ("triton", "pytorch-triton"):
        try:
            out = {"installed": True, "version": metadata.version(dist), "distribution": dist}
            break
        except metadata.PackageNotFoundError:
            continue
    out["required"] = _triton_required(environ)
    return out


_PTXAS_RELEASE = re.compile(r"release (\d+\.\d+)")


def _ptxas(environ: dict[str, str]) -> dict[str, Any]:
    """The ptxas Triton runs: $TRITON_PTXAS_PATH, else the one on PATH (conda-forge's triton
    uses cuda-nvcc-tools' in the env), else the copy bundled in the triton wheel."""
    path = environ.get("TRITON_PTXAS_PATH") or shutil.which("ptxas", path=environ.get("PATH"))
    if not path:
        try:
            import importlib.util

            spec = importlib.util.find_spec("triton")
        except (ImportError, ValueError):
            spec = None
        if spec and spec.origin:
            bundled = Path(spec.origin).parent / "backends" / "nvidia" / "bin" / "ptxas"
            path = str(bundled) if bundled.is_file() else None
    if not path:
        return {"path": None, "version": None, "cuda": None}
    code, text = _run([path, "--version"])
    found = _PTXAS_RELEASE.search(text)
    release = [ln for ln in text.splitlines() if "release" in ln]
    return {
        "path": path,
        "version": _first_line(release[0] if release else text) or None,
        "cuda": found.group(1) if found else None,
    }


def toolchain(args: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Compilers, Triton and ptxas as the compile stack would find them (no framework)."""
    environ = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryDirectory(prefix="envcheck-cc-") as work:
        return {
            "c": _compiler("c", environ, work),
            "cxx": _compiler("cxx", environ, work),
            "triton": _triton(environ),
            "ptxas": _ptxas(environ),
        }


def _writable(folder: str) -> str | None:
    """None when files can be created in ``folder`` (made if missing), else why not."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".envcheck-"):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def cache_dirs(scratch: str) -> dict[str, Any]:
    """Point Inductor's and Triton's caches at ``scratch`` unless the user named folders.

    Their defaults (/tmp/torchinductor_$USER, ~/.triton) make a cold compile look warm and
    fail on a read-only home; a named folder is respected and tested for writing.
    """
    out: dict[str, Any] = {}
    for var, sub in zip(CACHE_VARS, ("inductor", "triton")):
        named = os.environ.get(var)
        folder = named or os.path.join(scratch, sub)
        os.environ[var] = folder
        out[var] = {"path": folder, "named": bool(named), "error": _writable(folder)}
    return out


def _relative_error(got, want) -> float:
    ref = float(want.detach().abs().max())
    diff = float((got.detach() - want.detach()).abs().max())
    return diff / ref if ref > 0 else diff


def _timed_steps(step, n: int, sync) -> float:
    step()
    sync()
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return (time.perf_counter() - start) / n


def torch_compile(args: dict[str, Any]) -> dict[str, Any]:
    """torch.compile (Inductor) of a tiny conv + matmul + reduction model, forward and
    backward, against eager: errors, cold and warm compile seconds, step speed."""
    # the runner's per-probe folder, removed even when the probe is killed (a timeout, Ctrl-C)
    parent = os.environ.get("ENVCHECK_PROBE_SCRATCH")
    parent = parent if parent and os.path.isdir(parent) else None
    # what this probe changes in its process, put back after (a warm worker lives on)
    saved_env = {k: os.environ.get(k) for k in ("TMPDIR", *CACHE_VARS)}
    saved_tempdir = tempfile.tempdir
    try:
        with tempfile.TemporaryDirectory(prefix="envcheck-compile-", dir=parent) as scratch:
            return _torch_compile_in(scratch, args.get("device", "cpu"), args.get("steps", 20))
    finally:
        tempfile.tempdir = saved_tempdir
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _torch_compile_in(scratch: str, device: str, steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"device": device, "toolchain": toolchain({})}
    out["cache"] = cache_dirs(scratch)
    # gcc and Inductor's workers write their temp files under TMPDIR: keep them in here
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.environ["TMPDIR"] = tempfile.tempdir = tmp
    start = time.perf_counter()
    import torch

    out["import_seconds"] = time.perf_counter() - start
    out["torch_version"] = torch.__version__
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if device == "cuda":
            # TF32 would make eager and compiled differ by design, not by a fault.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            out["device_name"] = torch.cuda.get_device_name(0)
        out.update(_compare(torch, device, steps))
    except Exception as exc:  # the failure is the finding: keep the facts that explain it
        out.update(compiled=False, error=_error_text(exc), error_root=_root_line(exc))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        torch._dynamo.reset()  # a warm worker must not keep this model's compiled graphs
    return out


def _root_line(exc: BaseException) -> str:
    """The innermost cause's first line: PyTorch wraps it (BackendCompilerFailed, ...)."""
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    text = f"{type(exc).__name__}: {exc}".strip()
    return (text.splitlines() or [""])[0][:300]


def _error_text(exc: BaseException) -> str:
    """The exception and the causes it chains (Inductor wraps the compiler's own error)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen and len(parts) < 4:
        seen.add(id(exc))
        parts.append(f"{type(exc).__name__}: {exc}".strip())
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)[-4000:]


def _model(torch):
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.weight = torch.nn.Parameter(torch.randn(4 * 6 * 6, 8) * 0.1)

        def forward(self, x):
            h = torch.relu(self.conv(x)).flatten(1)
            logits = h @ self.weight
            return torch.logsumexp(logits, dim=1).mean() + logits.pow(2).sum(dim=1).mean()

    return Tiny()


def _compare(torch, device: str, steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    eager = _model(torch).to(device)
    compiled_model = _model(torch).to(device)
    compiled_model.load_state_dict(eager.state_dict())
    x = torch.randn(16, 1, 8, 8, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run(model):
        model.zero_grad(set_to_none=True)
        loss = model(x)
        loss.backward()
        return loss, [p.grad for p in model.parameters()]

    compiled = torch.compile(compiled_model)
    start = time.perf_counter()
    got_loss, got_grads = run(compiled)
    sync()
    cold = time.perf_counter() - start
    want_loss, want_grads = run(eager)
    errors = [_relative_error(got_loss, want_loss)]
    errors += [_relative_error(g, w) for g, w in zip(got_grads, want_grads)]
    # Warm: the same model compiled again after dynamo forgets it; Inductor's cache (on disk
    # and in memory) now holds the kernels, as in a second run of the same training script.
    torch._dynamo.reset()
    compiled = torch.compile(compiled_model)
    start = time.perf_counter()
    run(compiled)
    sync()
    warm = time.perf_counter() - start
    eager_step = _timed_steps(lambda: run(eager), steps, sync)
    compiled_step = _timed_steps(lambda: run(compiled), steps, sync)
    return {
        "compiled": True,
        "max_rel_error": max(errors),
        "tolerance": TOLERANCE.get(device, 1e-3),
        "cold_seconds": cold,
        "warm_seconds": warm,
        "eager_step_ms": eager_step * 1e3,
        "compiled_step_ms": compiled_step * 1e3,
        "speedup": eager_step / compiled_step if compiled_step > 0 else None,
    }


def tf_compile(args: dict[str, Any]) -> dict[str, Any]:
    """tf.function(jit_compile=True) (XLA) of a conv + matmul + reduction against the same
    function not compiled: relative error and compile seconds."""
    device = args.get("device", "cpu")
    start = time.perf_counter()
    import tensorflow as tf

    out: dict[str, Any] = {"device": device, "import_seconds": time.perf_counter() - start}
    out["tf_version"] = tf.__version__
    name = "/GPU:0" if device == "gpu" else "/CPU:0"
    with tf.device(name):
        rng = tf.random.stateless_normal
        x = rng((16, 8, 8, 1), seed=(1, 2))
        k = rng((3, 3, 1, 4), seed=(3, 4)) * 0.3
        w = rng((6 * 6 * 4, 8), seed=(5, 6)) * 0.1

        def f(x, k, w):
            h = tf.nn.relu(tf.nn.conv2d(x, k, strides=1, padding="VALID"))
            logits = tf.reshape(h, (16, -1)) @ w
            return tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1))

        plain = tf.function(f, jit_compile=False)
        xla = tf.function(f, jit_compile=True)
        want = plain(x, k, w).numpy()
        try:
            start = time.perf_counter()
            got = xla(x, k, w).numpy()
            first = time.perf_counter() - start
            start = time.perf_counter()
            xla(x, k, w).numpy()
            again = time.perf_counter() - start
            start = time.perf_counter()
            plain(x, k, w).numpy()
            plain_step = time.perf_counter() - start
        except Exception as exc:  # XLA's own words (libdevice, ptxas) are the finding
            out.update(compiled=False, error=_error_text(exc), error_root=_root_line(exc))
            return out
    ref = abs(float(want)) or 1.0
    out.update(
        {
            "compiled": True,
            "max_rel_error": abs(float(got) - float(want)) / ref,
            "tolerance": TF_TOLERANCE,
            "compile_seconds": max(first - again, 0.0),
            "first_call_seconds": first,
            "step_ms": again * 1e3,
            "plain_step_ms": plain_step * 1e3,
        }
    )
    return out
