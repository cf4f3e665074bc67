"""This workspace's own rules on top of satisfiability: provenance and the CUDA line.

- every package is an https download from conda-forge with a sha256 to verify it by;
- CUDA builds only where the platform declares CUDA, and of that CUDA major
  (11 -> cudatoolkit 11.x / cuda118 builds; 12 and 13 -> cuda-version 12.x / 13.x);
- no CPU PyTorch/TensorFlow build in a CUDA env (conda-forge's bare `pytorch` can silently
  solve to CPU: its CUDA builds only win by build number);
- no cuDNN >= 9.11 with CUDA 12 (withdrawn from conda-forge: segfaults on pre-Turing GPUs).
"""

from __future__ import annotations

import re
from typing import Any

from .findings import Finding, Scope
from .manifest import EnvPlatform
from .satisfiability import RELOCK, record_label

CHECK = "policy"
CONDA_FORGE = "https://conda.anaconda.org/conda-forge/"
FRAMEWORKS = ("pytorch", "libtorch", "tensorflow", "tensorflow-base")
CUDNN = ("cudnn", "libcudnn")
_CUDA_BUILD = re.compile(r"(?:^|_)cuda(\d+)")
_ENV_CUDA = re.compile(r"cuda(\d+)")


def build_cuda_major(build: str) -> int | None:
    """CUDA major a build string is for: cuda118 -> 11, cuda129 -> 12, cuda130 -> 13."""
    match = _CUDA_BUILD.search(build)
    if not match:
        return None
    digits = match.group(1)
    if digits.startswith("1") and len(digits) >= 2:
        return int(digits[:2])
    return int(digits[0])


def _major(version: str) -> int | None:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else None


def _at_least(version: str, floor: str) -> bool:
    from rattler import Version

    try:
        return Version(version) >= Version(floor)
    except Exception:  # an unparsable version cannot be judged
        return False


def check_env_name(env: str, platforms: dict[str, EnvPlatform]) -> list[Finding]:
    """An env named cudaNN should declare CUDA NN: the name is what users pick it by."""
    match = _ENV_CUDA.search(env)
    if not match:
        return []
    want = build_cuda_major("cuda" + match.group(1))
    out = []
    for pname, ep in platforms.items():
        if ep.cuda_major is None:
            cause = f"environment {env} declares no CUDA on {pname}"
        elif ep.cuda_major != want:
            cause = f"environment {env} declares cuda = {ep.cuda!r} on {pname}"
        else:
            continue
        out.append(
            Scope(CHECK, env, pname).warning(
                "__cuda",
                cause,
                f'declare cuda = "{want}.x" on that platform in pixi.toml',
            )
        )
    return out


def check_policy(
    env: str, ep: EnvPlatform, plat: str, subdir: str, records: list[Any], pypi: list[Any]
) -> list[Finding]:
    at = Scope(CHECK, env, plat)
    out: list[Finding] = []
    for rec in records:
        out += _provenance(env, plat, subdir, rec)
    for pkg in pypi:
        out.append(
            at.error(
                pkg.name,
                f"PyPI package {pkg.name} {pkg.version} is not from conda-forge",
                "depend on the conda-forge package instead, then re-lock",
            )
        )
    out += _cuda_line(env, ep, plat, records)
    return out


def _provenance(env: str, plat: str, subdir: str, rec: Any) -> list[Finding]:
    at = Scope(CHECK, env, plat)
    out = []
    name, url = rec.name.normalized, rec.url
    if url.startswith("http://"):
        out.append(
            at.error(
                name,
                f"{rec.file_name} is fetched over plain http",
                f"lock the https URL {CONDA_FORGE}...: re-lock",
            )
        )
    elif not url.startswith(CONDA_FORGE):
        out.append(
            at.error(
                name,
                f"{rec.file_name} is not from conda-forge ({url})",
                'set channels = ["conda-forge"] and re-lock',
            )
        )
    if not rec.sha256:
        out.append(
            at.error(
                name,
                f"{rec.file_name} has no sha256, so its download cannot be verified",
                RELOCK,
            )
        )
    if rec.subdir not in (subdir, "noarch"):
        out.append(
            at.error(
                name,
                f"{rec.file_name} is a {rec.subdir} package on a {subdir} platform",
                RELOCK,
            )
        )
    return out


def _cuda_line(env: str, ep: EnvPlatform, plat: str, records: list[Any]) -> list[Finding]:
    at = Scope(CHECK, env, plat)
    out = []
    want = ep.cuda_major
    by_name = {r.name.normalized: r for r in records}
    for rec in records:
        name, build = rec.name.normalized, str(rec.build)
        got = build_cuda_major(build)
        if want is None and got is not None:
            out.append(
                at.error(
                    name,
                    f"{record_label(rec)} is a CUDA {got} build in a CPU env",
                    'pin build = "cpu_*" (or declare cuda on the platform), re-lock',
                )
            )
        elif want is not None and got is not None and got != want:
            out.append(
                at.error(
                    name,
                    f"{record_label(rec)} is a CUDA {got} build in a CUDA {want} env",
                    f'pin build = "{_build_glob(want)}" and re-lock',
                )
            )
        if (
            want is not None
            and name in FRAMEWORKS
            and (build.startswith("cpu") or "cuda" not in build)
        ):
            out.append(
                at.error(
                    name,
                    f"{record_label(rec)} is a CPU build in CUDA {want} env {env}",
                    f'pin build = "{_build_glob(want)}" (or pytorch-gpu) and re-lock',
                )
            )
        if want == 12 and name in CUDNN and _at_least(str(rec.version), "9.11"):
            out.append(
                at.error(
                    name,
                    f"{record_label(rec)}: cuDNN >= 9.11 for CUDA 12 was withdrawn "
                    "from conda-forge (segfaults on pre-Turing GPUs)",
                    'constrain cudnn = "<9.11" and re-lock',
                )
            )
    if want is None:
        return out
    if want <= 11:
        out += _selector(env, plat, by_name, "cudatoolkit", want, required=True)
        if "cuda-version" in by_name:
            out += _selector(env, plat, by_name, "cuda-version", want, required=False)
    else:
        out += _selector(env, plat, by_name, "cuda-version", want, required=True)
        if "cudatoolkit" in by_name:
            rec = by_name["cudatoolkit"]
            out.append(
                at.error(
                    "cudatoolkit",
                    f"{record_label(rec)} is the CUDA <= 11 toolkit in a CUDA {want} env",
                    f'pin cuda-version = "{want}.*" and re-lock',
                )
            )
    return out


def _selector(
    env: str, plat: str, by_name: dict[str, Any], name: str, want: int, required: bool
) -> list[Finding]:
    at = Scope(CHECK, env, plat)
    rec = by_name.get(name)
    if rec is None:
        if not required:
            return []
        return [
            at.warning(
                name,
                f"no {name} record: nothing pins the CUDA {want} line",
                f'depend on {name} = "{want}.*" and re-lock',
            )
        ]
    if _major(str(rec.version)) != want:
        return [
            at.error(
                name,
                f"{record_label(rec)} selects the wrong CUDA line for a CUDA {want} env",
                f'pin {name} = "{want}.*" and re-lock',
            )
        ]
    return []


def _build_glob(major: int) -> str:
    return "cuda118*" if major == 11 else f"cuda{major}*"
