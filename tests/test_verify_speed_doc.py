"""docs/verify-speed.md's tables come from bench/results/verify-speed/, never by hand."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import verify_speed  # noqa: E402


def test_doc_tables_match_the_recorded_runs():
    assert sorted(verify_speed.RESULTS_DIR.glob("*.json")), "no recorded verify-speed runs"
    text = verify_speed.DOC.read_text(encoding="utf-8")
    assert verify_speed.current(text) == verify_speed.table(), (
        "docs/verify-speed.md differs from bench/results/verify-speed/: run "
        "`python bench/verify_speed.py --table`"
    )


def test_recorded_split_leaves_the_rest_as_other():
    outcome = {"seconds": 10.0, "timing": {"start": 1.0, "import": 2.0, "work": 5.0}}
    split = verify_speed.split_recorded(outcome)
    assert split["start"] == 1.0 and split["import"] == 2.0 and split["work"] == 5.0
    assert abs(split["other"] - 2.0) < 1e-9 and split["eval"] == 0.0
