#!/usr/bin/env python3
"""Derive the GitHub Actions job matrices of ci.yml from pixi.lock.

CI installs exactly what the lock holds: one `install` leg per environment x locked platform,
and one `test` leg per platform subdir the test environment is locked for. Nothing is listed
twice by hand, so adding a platform or an environment to pixi.toml (and re-locking) adds its
CI legs.

    python .ci/gha_matrix.py [--lock pixi.lock] [--skip-env default] [--test-env default]

With $GITHUB_OUTPUT set it writes `envs=<json>` and `tests=<json>` there (and a table to
$GITHUB_STEP_SUMMARY when set); otherwise it prints both lists. Needs PyYAML.

Per leg: `env`, `platform` (the lock's platform name, e.g. linux-64-cuda12), `subdir`,
`runner` (a GitHub-hosted label) and, for install legs, `cuda` (the `__cuda` version the lock
declares for that platform, for CONDA_OVERRIDE_CUDA on GPU-less runners; "" if none) and
`check` (`verify` for CPU legs; `info` for CUDA legs, whose verify needs a real GPU; or what
`--check ENV=KIND` names, e.g. `doctor` for the doctor env, which has no frameworks to verify).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

# GitHub-hosted runner label per conda subdir.
RUNNERS = {
    "linux-64": "ubuntu-24.04",
    "linux-aarch64": "ubuntu-24.04-arm",
    "osx-arm64": "macos-15",
    "osx-64": "macos-15-intel",
    "win-64": "windows-2025",
}

# Names end up in file names, artifact names and shell variables: keep them plain.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class MatrixError(Exception):
    """The lock cannot be turned into a matrix."""


def load_lock(lock_path: Path) -> dict:
    try:
        text = lock_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MatrixError(f"cannot read {lock_path}: {exc}") from exc
    if hasattr(yaml, "CSafeLoader"):  # libyaml: a lock is megabytes
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    else:
        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("environments"), dict):
        raise MatrixError(f"{lock_path} is not a pixi lock file (no `environments`)")
    return data


def lock_platforms(lock: dict) -> dict[str, dict[str, str]]:
    """Lock platform name -> {subdir, cuda}. Lock v7 lists them; older locks key by subdir."""
    table: dict[str, dict[str, str]] = {}
    for entry in lock.get("platforms") or []:
        name = str(entry["name"])
        cuda = ""
        for vp in entry.get("virtual-packages") or []:
            parts = str(vp).split("=")
            if parts[0] == "__cuda" and len(parts) > 1:
                cuda = parts[1]
        table[name] = {"subdir": str(entry.get("subdir") or name), "cuda": cuda}
    return table


def _check_name(kind: str, name: str) -> str:
    if not SAFE_NAME.match(name):
        raise MatrixError(f"{kind} name {name!r} is not a plain name")
    return name


def build(
    lock: dict, skip_envs: set[str], test_envs: list[str], checks: dict[str, str] | None = None
) -> tuple[list, list]:
    platforms = lock_platforms(lock)
    envs: list[dict[str, str]] = []
    locked: dict[str, list[str]] = {}
    for raw_name, env in lock["environments"].items():
        env_name = _check_name("environment", str(raw_name))
        names = sorted(str(p) for p in ((env or {}).get("packages") or {}))
        locked[env_name] = names
        if env_name in skip_envs:
            continue
        for name in names:
            _check_name("platform", name)
            info = platforms.get(name, {"subdir": name, "cuda": ""})
            runner = RUNNERS.get(info["subdir"])
            if runner is None:
                raise MatrixError(
                    f"{env_name}/{name}: no GitHub-hosted runner for subdir {info['subdir']!r}; "
                    "add one to RUNNERS in .ci/gha_matrix.py"
                )
            envs.append(
                {
                    "env": env_name,
                    "platform": name,
                    "subdir": info["subdir"],
                    "runner": runner,
                    "cuda": info["cuda"],
                    "check": (checks or {}).get(env_name) or ("info" if info["cuda"] else "verify"),
                }
            )

    tests: list[dict[str, str]] = []
    seen: set[str] = set()
    for env_name in test_envs:
        for name in locked.get(env_name, []):
            info = platforms.get(name, {"subdir": name, "cuda": ""})
            if info["cuda"] or info["subdir"] in seen or info["subdir"] not in RUNNERS:
                continue
            seen.add(info["subdir"])
            tests.append(
                {
                    "env": env_name,
                    "platform": name,
                    "subdir": info["subdir"],
                    "runner": RUNNERS[info["subdir"]],
                }
            )
    if not envs:
        raise MatrixError("the lock holds no environment x platform to install")
    if not tests:
        raise MatrixError(f"none of the test environments {test_envs} is locked for a CPU platform")
    return envs, tests


def _markdown(envs: list, tests: list) -> str:
    lines = [
        "### CI matrix from pixi.lock",
        "",
        "| job | environment | platform | runner | CONDA_OVERRIDE_CUDA | check |",
        "|---|---|---|---|---|---|",
    ]
    for leg in envs:
        lines.append(
            f"| install | {leg['env']} | {leg['platform']} | {leg['runner']} | "
            f"{leg['cuda'] or '-'} | {leg['check']} |"
        )
    for leg in tests:
        lines.append(f"| test | {leg['env']} | {leg['platform']} | {leg['runner']} | - | test |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=Path("pixi.lock"))
    parser.add_argument(
        "--skip-env",
        action="append",
        default=[],
        metavar="ENV",
        help="leave ENV out of the install legs (repeatable)",
    )
    parser.add_argument(
        "--test-env",
        action="append",
        default=[],
        metavar="ENV",
        help="environment(s) the test legs use, first locked one wins per subdir "
        "(repeatable; default: default, then cpu)",
    )
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="ENV=KIND",
        help="the check install legs of ENV run instead of verify/info (repeatable)",
    )
    args = parser.parse_args(argv)
    checks = dict(c.split("=", 1) for c in args.check if "=" in c)
    try:
        for env, kind in checks.items():
            _check_name("environment", env)
            _check_name("check", kind)
        envs, tests = build(
            load_lock(args.lock), set(args.skip_env), args.test_env or ["default", "cpu"], checks
        )
    except MatrixError as exc:
        print(f"gha_matrix: error: {exc}", file=sys.stderr)
        return 1

    envs_json = json.dumps(envs, separators=(",", ":"))
    tests_json = json.dumps(tests, separators=(",", ":"))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as f:
            f.write(f"envs={envs_json}\ntests={tests_json}\n")
    else:
        print(f"envs={json.dumps(envs, indent=2)}")
        print(f"tests={json.dumps(tests, indent=2)}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(_markdown(envs, tests))
    else:
        print(_markdown(envs, tests), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
