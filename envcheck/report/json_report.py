"""JSON report (schema: envcheck/report/schema.json, documented in the README)."""

from __future__ import annotations

import json
from pathlib import Path

from ..model import Report

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"
