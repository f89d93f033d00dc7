"""The report as JUnit XML: one test suite per requirement, one test case per
check, so any CI system can show and gate on it."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from kaitiaki.probe.model import REQUIREMENTS, CheckResult, Report, Verdict

__all__ = ["render_junit"]

UNRUN = (Verdict.SKIPPED, Verdict.NOT_APPLICABLE)


def _case(suite: ET.Element, row: int, result: CheckResult) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"requirement{row}.{result.check.id.split('.')[0]}",
        name=f"{result.check.id}: {result.check.title}",
        time=f"{result.seconds:.3f}",
    )
    text = f"{result.outcome.summary}\nFix: {result.check.remedy}"
    if result.verdict == Verdict.FAIL:
        ET.SubElement(case, "failure", message=result.outcome.summary).text = text
    elif result.verdict == Verdict.ERROR:
        ET.SubElement(case, "error", message=result.outcome.summary).text = text
    elif result.verdict in UNRUN:
        ET.SubElement(case, "skipped", message=result.outcome.summary)
    properties = ET.SubElement(case, "properties")
    ET.SubElement(
        properties, "property", name="hnzas", value=" ".join(result.check.hnzas)
    )


def _counts(results: list[CheckResult]) -> dict[str, str]:
    return {
        "tests": str(len(results)),
        "failures": str(sum(r.verdict == Verdict.FAIL for r in results)),
        "errors": str(sum(r.verdict == Verdict.ERROR for r in results)),
        "skipped": str(sum(r.verdict in UNRUN for r in results)),
    }


def render_junit(report: Report) -> str:
    root = ET.Element(
        "testsuites", {"name": "kaitiaki probe", **_counts(list(report.results))}
    )
    for row, results in report.by_row().items():
        requirement = REQUIREMENTS[row]
        name = f"{row}. {requirement.title} ({requirement.catalogue_id})"
        suite = ET.SubElement(root, "testsuite", {"name": name, **_counts(results)})
        for result in results:
            _case(suite, row, result)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
