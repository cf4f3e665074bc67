"""JSON report (schema: envcheck/report/schema.json, documented in the README)."""

from __future__ import annotations

import json
from pathlib import Path

from ..guard import finite
from ..model import Report

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def to_json(report: Report) -> str:
    # NaN/Infinity (a diverged loss) as null: JSON has no such numbers, readers refuse them
    return json.dumps(finite(report.to_dict()), indent=2, default=str) + "\n"
