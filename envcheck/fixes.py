"""Fixes that fit the install the user has: a pixi env, a conda env, or pip in any Python.

The checks phrase their fixes for pixi (`pixi install --locked -e cuda12`,
`pixi run --locked -e cpu verify`), the project's main route. A user who installed envcheck and
torch with pip, or made a conda env from locks/explicit/, cannot run those; here each pixi command
in a fix becomes what does the same on their install. Pure over the results and the environment
facts, so a replay reads the same.
"""

from __future__ import annotations

import re
from typing import Any

from .model import CheckResult

# pixi env -> the profile verify checks it against
ENV_PROFILE = {"default": "cpu", "torch-cpu": "cpu", "torch-cuda12": "cuda12"}
# pixi env -> PyTorch's wheel index for the same CUDA line (download.pytorch.org/whl/<tag>)
TORCH_INDEX = {"cpu": "cpu", "cuda11": "cu118", "cuda12": "cu128", "cuda13": "cu130"}
SUBDIR = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "aarch64"): "linux-aarch64",
    ("darwin", "arm64"): "osx-arm64",
    ("windows", "amd64"): "win-64",
}

_INSTALL_ENV = re.compile(r"`?pixi (?:re)?install(?: --[\w-]+)* -e ([\w<>-]+)`?")
_INSTALL_BARE = re.compile(r"`?pixi (?:re)?install(?: --[\w-]+)*`?")
_RUN_VERIFY = re.compile(r"`?pixi run(?: --[\w-]+)*(?: -e ([\w-]+))? verify`?")
_CONDA_ONLY = re.compile(r" \(conda-forge [^()]*\)| instead of \w+-cpu\b")


def install_kind(env: dict[str, Any]) -> str:
    """ "pixi", "conda" or "pip", from the environment facts."""
    if env.get("pixi_environment"):
        return "pixi"
    if env.get("conda_prefix") and env.get("python_in_prefix", True):
        return "conda"
    return "pip"


def _subdir(env: dict[str, Any]) -> str:
    plat = env.get("platform") or {}
    key = (str(plat.get("system", "")).lower(), str(plat.get("machine", "")).lower())
    return SUBDIR.get(key, "<platform>")


def _profile(pixi_env: str | None) -> str | None:
    return ENV_PROFILE.get(pixi_env or "", pixi_env) if pixi_env else None


def _pip_build(pixi_env: str, fix: str) -> str:
    """The pip command that installs the framework build a pixi env would have."""
    profile = _profile(pixi_env) or "cpu"
    if "tensorflow" in fix.lower() and "pytorch" not in fix.lower():
        package = "tensorflow-cpu" if profile == "cpu" else "'tensorflow[and-cuda]'"
        return f"`pip install --force-reinstall {package}`"
    index = TORCH_INDEX.get(profile, "cpu")
    return (
        "`pip install --force-reinstall torch --index-url "
        f"https://download.pytorch.org/whl/{index}`"
    )


def fit(fix: str, kind: str, env: dict[str, Any]) -> str:
    """``fix`` with its pixi commands put the way ``kind`` of install does them."""
    if kind == "pixi" or "pixi " not in fix:
        return fix
    subdir = _subdir(env)

    def install(m: re.Match) -> str:
        name = m.group(1)
        if kind == "conda":
            if name.startswith("<"):
                return "recreate the conda env from its `locks/explicit/` file"
            return f"`conda create -n {name} --file locks/explicit/{name}-{subdir}.txt`"
        if name.startswith("<"):  # "an env of the lock" in general (e.g. for its compilers):
            return m.group(0)  # pip has no equivalent, so the route stays named as it is
        return _pip_build(name, fix)

    def run_verify(m: re.Match) -> str:
        profile = _profile(m.group(1))
        expect = f" --expect {profile}" if profile else ""
        if kind == "conda":
            return f"`python -m envcheck verify{expect}` in that conda env"
        verify = f"`envcheck verify{expect}`"
        if profile:  # a pip user has one build per framework: that profile needs its build
            return f"{verify} after {_pip_build(profile, fix)}"
        return verify

    if kind == "pip":  # conda package names mean nothing to pip
        fix = _CONDA_ONLY.sub("", fix)
    kept: list[str] = []  # commands left as they are, out of the later patterns' way

    def keep(text: str) -> str:
        kept.append(text)
        return f"\0{len(kept) - 1}\0"

    fix = _INSTALL_ENV.sub(lambda m: keep(install(m)), fix)
    fix = _RUN_VERIFY.sub(lambda m: keep(run_verify(m)), fix)
    bare = (
        "recreate the conda env from its `locks/explicit/` file"
        if kind == "conda"
        else "`pip install --force-reinstall` of the package"
    )
    fix = _INSTALL_BARE.sub(bare, fix)
    return re.sub("\0(\\d+)\0", lambda m: kept[int(m.group(1))], fix)


def fit_fixes(results: list[CheckResult], env: dict[str, Any]) -> list[CheckResult]:
    """Every result's fix fitted to this install (in place; returns ``results``)."""
    kind = install_kind(env)
    for r in results:
        if r.fix:
            r.fix = fit(r.fix, kind, env)
    return results
