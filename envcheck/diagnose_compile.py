"""Rules for the compile stack (torch.compile, Triton, XLA): facts in, cause and fix out.

Pure functions of plain data (the compile probes' facts and the framework's own error text),
so recorded facts from a broken machine replay through them.
"""

from __future__ import annotations

from typing import Any

from .diagnose import Diagnosis, _version_tuple

LANGUAGE = {"c": "C", "cxx": "C++"}
# Who reads each compiler: Triton builds its launcher with C, Inductor writes C++ for the CPU.
READER = {"c": "Triton", "cxx": "Inductor"}
INSTALL_FIX = (
    "install the environment from the lock (`pixi install --locked -e <env>`: its linux-64 and "
    "linux-aarch64 envs carry conda-forge's gcc and gxx), or install a compiler on the machine "
    "(Debian/Ubuntu: apt install gcc g++; macOS: xcode-select --install; Windows: Visual Studio "
    "Build Tools, run from its Developer prompt)"
)


def needed_languages(device: str) -> tuple[str, ...]:
    """The compilers torch.compile needs on ``device``: Inductor's C++ for the CPU; on a GPU
    Triton's C launcher (Inductor's GPU kernels are Triton, its wrapper Python)."""
    return ("c",) if device == "cuda" else ("cxx",)


def no_compiler(toolchain: dict[str, Any], device: str, error: str = "") -> Diagnosis | None:
    """The compiler the stack needs is not found; name every place that was looked at."""
    missing = []
    for lang in needed_languages(device):
        fact = toolchain.get(lang) or {}
        if not fact.get("path") and not fact.get("from_variable"):
            missing.append(lang)
    if not missing and not toolchain:
        if "InvalidCxxCompiler" in error:
            missing = ["cxx"]
        elif "Failed to find C compiler" in error:
            missing = ["c"]
    if not missing:
        return None
    parts = []
    for lang in missing:
        looked = (toolchain.get(lang) or {}).get("looked_for") or (
            ["$CC", "gcc", "clang"] if lang == "c" else ["$CXX", "g++ (cpp.cxx)"]
        )
        setting = " (torch._inductor.config.cpp.cxx)" if lang == "cxx" else ""
        parts.append(
            f"no {LANGUAGE[lang]} compiler for {READER[lang]} (looked for {', '.join(looked)} "
            f"on PATH{setting})"
        )
    return Diagnosis("; ".join(parts), f"{INSTALL_FIX}; or set {_vars(missing)} to one")


def _vars(langs: list[str]) -> str:
    return " / ".join("CC" if lang == "c" else "CXX" for lang in langs)


def not_a_compiler(toolchain: dict[str, Any], device: str) -> Diagnosis | None:
    """A compiler that is named (CC/CXX) or found (gcc, g++) but cannot build a shared object.

    A CC or CXX that is not a compiler (/bin/true, a wrapper script) breaks Triton, Inductor
    and every extension build, on any device; /bin/true even passes the `--version` test
    Inductor applies. A found default counts where ``device`` needs that language.
    """
    for lang in ("c", "cxx"):
        fact = toolchain.get(lang) or {}
        if fact.get("works") or not (fact.get("path") or fact.get("from_variable")):
            continue
        if not fact.get("from_variable") and lang not in needed_languages(device):
            continue
        var = fact.get("variable") or ("CC" if lang == "c" else "CXX")
        named = (fact.get("looked_for") or ["?"])[0] if fact.get("from_variable") else None
        what = named or f"{fact.get('command')} ({fact.get('path')})"
        why = fact.get("error") or "it failed to build a test shared library"
        cause = f"{what} is not a working {LANGUAGE[lang]} compiler: {why}"
        if named:
            fix = (
                f"point {var} at a {LANGUAGE[lang]} compiler (e.g. "
                f"{'gcc' if lang == 'c' else 'g++'}) or unset it"
            )
        else:
            fix = f"reinstall the compiler, or set {var} to a working one; {INSTALL_FIX}"
        return Diagnosis(cause, fix)
    return None


def triton_problem(toolchain: dict[str, Any], profile: str) -> Diagnosis | None:
    """On a GPU, Inductor's kernels are Triton's: it must be there, at the version PyTorch pins
    (conda-forge's pytorch depends on one exact triton, which is what pixi.lock holds)."""
    t = toolchain.get("triton") or {}
    fix = f"reinstall the env from the lock: `pixi install --locked -e {profile}`"
    if not t.get("installed"):
        return Diagnosis(
            "Triton is not installed: torch.compile has no GPU backend (Inductor generates "
            "Triton kernels)",
            f"{fix}; in a pip env: pip install the triton version torch requires",
        )
    want, have = t.get("required"), t.get("version")
    if want and have and _version_tuple(have.split("+")[0])[:3] != _version_tuple(want)[:3]:
        return Diagnosis(
            f"Triton {have} is installed but this PyTorch build needs Triton {want} (the "
            "version the lock holds)",
            fix,
        )
    return None


UNSUPPORTED_PTX = ("unsupported toolchain", "CUDA_ERROR_UNSUPPORTED_PTX_VERSION")


def ptxas_too_new(error: str, ptxas: dict[str, Any], driver_cuda: str | None) -> Diagnosis | None:
    """ptxas writes PTX/cubins for a newer CUDA than the driver can load.

    The driver says "the provided PTX was compiled with an unsupported toolchain"; it also
    follows, before any kernel runs, when ptxas's CUDA release is newer than the driver's.
    """
    said = any(s in (error or "") for s in UNSUPPORTED_PTX)
    newer = bool(
        ptxas.get("cuda")
        and driver_cuda
        and _version_tuple(str(ptxas["cuda"]))[:2] > _version_tuple(str(driver_cuda))[:2]
    )
    if not (said or newer):
        return None
    have = f"ptxas {ptxas.get('cuda')} ({ptxas.get('path')})" if ptxas.get("cuda") else "ptxas"
    driver = f"CUDA {driver_cuda}" if driver_cuda else "an older CUDA"
    return Diagnosis(
        f"{have} is newer than the driver, which supports {driver}: the driver cannot load "
        "what Triton/XLA compile (PTX 'unsupported toolchain')",
        "upgrade the NVIDIA driver to one that supports the env's CUDA, or use the env built for "
        "the driver's CUDA (`envcheck doctor`); a stray ptxas from a system CUDA: remove it from "
        "PATH or set TRITON_PTXAS_PATH to the env's",
    )


CACHE_FIX = (
    "set TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR to a writable folder (e.g. "
    "export TORCHINDUCTOR_CACHE_DIR=/tmp/$USER/inductor TRITON_CACHE_DIR=/tmp/$USER/triton); "
    "containers and Apptainer images often have a read-only home"
)


def cache_not_writable(cache: dict[str, Any], error: str = "") -> Diagnosis | None:
    """Inductor's or Triton's cache folder cannot be written."""
    bad = [
        f"{var}={entry.get('path')} ({entry.get('error')})"
        for var, entry in sorted((cache or {}).items())
        if isinstance(entry, dict) and entry.get("error")
    ]
    # no facts on the folders (an older recording): PyTorch's own words
    if not cache and ("Read-only file system" in error or "Operation not permitted" in error):
        bad = [error.splitlines()[0][:200]]
    if not bad:
        return None
    return Diagnosis(f"the compile cache folder is not writable: {'; '.join(bad)}", CACHE_FIX)


def cache_noexec(cache: dict[str, Any], error: str) -> Diagnosis | None:
    """Inductor loads the kernels it built from its cache folder; on a `noexec` mount (a
    hardened /tmp in containers) dlopen refuses them."""
    if "failed to map segment from shared object" not in (error or ""):
        return None
    folder = (cache.get("TORCHINDUCTOR_CACHE_DIR") or {}).get("path") or "the cache folder"
    return Diagnosis(
        f"the compiled kernels cannot be loaded: {folder} is on a file system mounted noexec",
        "set TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR (and TMPDIR) to a folder on a mount "
        "that allows exec, or mount /tmp with exec (docker: --tmpfs /tmp:exec)",
    )


def compile_timeout(what: str, seconds: float) -> Diagnosis:
    return Diagnosis(
        f"{what} did not finish in {seconds:.0f} s",
        "a cold compile takes 15-30 s on 2 CPU cores and more under load: rerun with "
        "--timeout-scale 3, or leave the category out with --no-compile; if it hangs at any "
        "scale, set TORCHINDUCTOR_COMPILE_THREADS=1 and rerun with --json to report it",
    )
