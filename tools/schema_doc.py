"""Write the field reference of docs/reference/json-report.md from envcheck/report/schema.json.

    python tools/schema_doc.py           # rewrite the part between the markers
    python tools/schema_doc.py --check   # exit 1 when the page differs from the schema

The schema is the one source of truth; tests/test_readme.py regenerates and compares.
Only the standard library: it runs in any Python >= 3.9.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "envcheck" / "report" / "schema.json"
PAGE = ROOT / "docs" / "reference" / "json-report.md"
BEGIN = "<!-- tools/schema_doc.py: begin (regenerate: python tools/schema_doc.py) -->"
END = "<!-- tools/schema_doc.py: end -->"


def type_of(spec: dict, defs: dict) -> str:
    """A short, readable type for one property of the schema."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if "enum" in target:
            return type_of(target, defs)
        return f"object ({name})"
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    kind = spec.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(kinds)
    if "array" in kinds and "items" in spec:
        text = f"array of {type_of(spec['items'], defs)}"
    if spec.get("format"):
        text += f" ({spec['format']})"
    if spec.get("pattern"):
        text += f", matching `{spec['pattern']}`"
    if "minimum" in spec:
        text += f", >= {spec['minimum']}"
    return text


def table(title: str, spec: dict, defs: dict) -> list[str]:
    required = set(spec.get("required", ()))
    out = [f"### {title}", ""]
    if spec.get("description"):
        out += [spec["description"], ""]
    out += ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, prop in spec.get("properties", {}).items():
        meaning = " ".join(prop.get("description", "").split()).replace("|", "\\|")
        yes = "yes" if name in required else "no"
        out.append(f"| `{name}` | {type_of(prop, defs)} | {yes} | {meaning} |")
    return out + [""]


def render(schema: dict) -> str:
    defs = schema.get("$defs", {})
    props = schema["properties"]
    parts = table("Report (top level)", schema, defs)
    parts += table("`counts`", props["counts"], defs)
    parts += table("`categories[]`", props["categories"]["items"], defs)
    parts += table("`categories[].checks[]`", defs["check"], defs)
    devices = defs["check"]["properties"]["devices"]["items"]
    parts += table("`categories[].checks[].devices[]`", devices, defs)
    for name, spec in props.items():
        nested = spec.get("type") == "object" and "properties" in spec
        if name not in ("counts", "categories") and nested:
            parts += table(f"`{name}`", spec, defs)
    return "\n".join(parts).rstrip("\n") + "\n"


def splice(text: str, generated: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} lacks the markers {BEGIN!r} ... {END!r}")
    return text[: start + len(BEGIN)] + "\n" + generated + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    text = PAGE.read_text(encoding="utf-8")
    try:
        wanted = splice(text, render(schema))
    except ValueError as exc:
        print(f"schema_doc: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if wanted != text:
            print(f"schema_doc: {PAGE} differs from {SCHEMA.name}: run python tools/schema_doc.py")
            return 1
        return 0
    tmp = PAGE.with_name(PAGE.name + ".tmp")
    tmp.write_text(wanted, encoding="utf-8")
    tmp.replace(PAGE)
    print(f"schema_doc: wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
