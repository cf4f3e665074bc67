"""JUnit XML for CI systems: a testsuite per category, a testcase per check.

Several machines' reports (envcheck report) share one file: their suites are named
"<machine>/<category>" and their classnames "envcheck.<machine>.<category>".
"""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET

from ..model import CATEGORIES, Report, Status

# Characters XML 1.0 forbids (ElementTree writes them as they are: an ill-formed file).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _x(text: object) -> str:
    """Text fit for XML: every forbidden character shown as \\xNN instead."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _seconds(value: object) -> str:
    """An xs:decimal: never nan/inf (a report from elsewhere may hold them), never negative."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "0.000"
    return f"{x:.3f}" if math.isfinite(x) and x >= 0 else "0.000"


def _timestamp(started_at: object) -> str:
    """An xs:dateTime: the report's start if it is one, else now (UTC)."""
    try:
        when = dt.datetime.fromisoformat(str(started_at).replace("Z", "+00:00"))
    except ValueError:
        when = dt.datetime.now(dt.timezone.utc)
    return when.isoformat(timespec="seconds")


def to_junit(report: Report) -> str:
    return to_junit_many([(None, report)], f"envcheck {report.profile}")


def to_junit_many(reports: list[tuple[str | None, Report]], name: str) -> str:
    suites = ET.Element(
        "testsuites",
        name=_x(name),
        tests=str(sum(len(r.checks) for _, r in reports)),
        failures=str(sum(r.counts()["fail"] for _, r in reports)),
        errors="0",
        time=_seconds(sum(float(_seconds(r.duration_s)) for _, r in reports)),
    )
    for machine, report in reports:
        _add_suites(suites, report, machine)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _add_suites(suites: ET.Element, report: Report, machine: str | None) -> None:
    for cat in CATEGORIES:
        checks = [c for c in report.checks if c.category == cat]
        if not checks:
            continue
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=_x(f"{machine}/{cat}" if machine else cat),
            tests=str(len(checks)),
            failures=str(sum(c.status is Status.FAIL for c in checks)),
            errors="0",
            skipped=str(sum(c.status in (Status.SKIP, Status.NOT_RUN) for c in checks)),
            time=_seconds(sum(float(_seconds(c.duration_s)) for c in checks)),
            timestamp=_timestamp(report.started_at),
        )
        for c in checks:
            case = ET.SubElement(
                suite,
                "testcase",
                name=_x(c.name),
                classname=_x(f"envcheck.{machine}.{cat}" if machine else f"envcheck.{cat}"),
                time=_seconds(c.duration_s),
            )
            lines = [c.message] + [
                f"{d.device}: {d.status.value}: {d.message}"
                + (f" (fix: {d.fix})" if d.fix and d.fix != c.fix else "")
                for d in c.devices
            ]
            if c.status is Status.FAIL:
                node = ET.SubElement(case, "failure", message=_x(c.cause or c.message), type="fail")
                after = [f"follows from: {', '.join(c.follows)}"] if c.follows else []
                node.text = _x("\n".join(lines + after + [f"fix: {c.fix}"]))
            elif c.status is Status.SKIP:
                ET.SubElement(case, "skipped", message=_x(c.message))
            elif c.status is Status.NOT_RUN:  # a failure elsewhere stopped it: name that one
                ET.SubElement(
                    case,
                    "skipped",
                    message=_x(f"{c.message} (follows from {', '.join(c.follows)})"),
                )
            else:
                if c.status is Status.WARN:
                    lines += [f"warning: {c.cause}", f"fix: {c.fix}"]
                ET.SubElement(case, "system-out").text = _x("\n".join(lines))
