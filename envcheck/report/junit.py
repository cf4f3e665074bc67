"""JUnit XML for CI systems: a testsuite per category, a testcase per check.

Several machines' reports (envcheck report) share one file: their suites are named
"<machine>/<category>" and their classnames "envcheck.<machine>.<category>".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..model import CATEGORIES, Report, Status


def to_junit(report: Report) -> str:
    return to_junit_many([(None, report)], f"envcheck {report.profile}")


def to_junit_many(reports: list[tuple[str | None, Report]], name: str) -> str:
    suites = ET.Element(
        "testsuites",
        name=name,
        tests=str(sum(len(r.checks) for _, r in reports)),
        failures=str(sum(r.counts()["fail"] for _, r in reports)),
        errors="0",
        time=f"{sum(r.duration_s for _, r in reports):.3f}",
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
            name=f"{machine}/{cat}" if machine else cat,
            tests=str(len(checks)),
            failures=str(sum(c.status is Status.FAIL for c in checks)),
            errors="0",
            skipped=str(sum(c.status in (Status.SKIP, Status.NOT_RUN) for c in checks)),
            time=f"{sum(c.duration_s for c in checks):.3f}",
            timestamp=report.started_at[:19],
        )
        for c in checks:
            case = ET.SubElement(
                suite,
                "testcase",
                name=c.name,
                classname=f"envcheck.{machine}.{cat}" if machine else f"envcheck.{cat}",
                time=f"{c.duration_s:.3f}",
            )
            lines = [c.message] + [
                f"{d.device}: {d.status.value}: {d.message}"
                + (f" (fix: {d.fix})" if d.fix and d.fix != c.fix else "")
                for d in c.devices
            ]
            if c.status is Status.FAIL:
                node = ET.SubElement(case, "failure", message=c.cause or c.message, type="fail")
                after = [f"follows from: {', '.join(c.follows)}"] if c.follows else []
                node.text = "\n".join(lines + after + [f"fix: {c.fix}"])
            elif c.status is Status.SKIP:
                ET.SubElement(case, "skipped", message=c.message)
            elif c.status is Status.NOT_RUN:  # a failure elsewhere stopped it: name that one
                ET.SubElement(
                    case, "skipped", message=f"{c.message} (follows from {', '.join(c.follows)})"
                )
            else:
                if c.status is Status.WARN:
                    lines += [f"warning: {c.cause}", f"fix: {c.fix}"]
                ET.SubElement(case, "system-out").text = "\n".join(lines)
