#!/usr/bin/env python3
"""Every workflow's PIXI_VERSION satisfies pixi.toml's `requires-pixi` (and they agree).

    python .ci/pixi_version_check.py [--manifest pixi.toml] [--workflows .github/workflows]

Reads `PIXI_VERSION: vX.Y.Z` from each workflow and checks it against every `>=`/`<`/`==`
bound of requires-pixi. Stdlib only (Python >= 3.11 for tomllib).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib

VERSION = re.compile(r"^\s*PIXI_VERSION:\s*v?(\d+(?:\.\d+)*)\s*$", re.MULTILINE)
BOUND = re.compile(r"^\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+)*)\s*$")
OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def _tuple(v: str) -> tuple[int, ...]:
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def problems(manifest: Path, workflows: Path) -> list[str]:
    spec = tomllib.loads(manifest.read_text(encoding="utf-8"))["workspace"].get("requires-pixi")
    out, seen = [], {}
    for wf in sorted(workflows.glob("*.yml")):
        for version in VERSION.findall(wf.read_text(encoding="utf-8")):
            seen[wf.name] = version
            for bound in (spec or "").split(","):
                match = BOUND.match(bound)
                if not match:
                    out.append(f"{manifest.name}: cannot read requires-pixi bound {bound!r}")
                elif not OPS[match.group(1)](_tuple(version), _tuple(match.group(2))):
                    out.append(f"{wf.name}: PIXI_VERSION {version} violates requires-pixi {spec}")
    if len(set(seen.values())) > 1:
        out.append(f"the workflows pin different pixi versions: {seen}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("pixi.toml"))
    parser.add_argument("--workflows", type=Path, default=Path(".github/workflows"))
    args = parser.parse_args(argv)
    found = problems(args.manifest, args.workflows)
    for line in found:
        print(f"pixi-version: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
