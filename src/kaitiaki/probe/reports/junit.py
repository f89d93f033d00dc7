"""The report as JUnit XML: one test suite per requirement, one test case per
check, so any CI system can show and gate on it."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from kaitiaki.probe.model import REQUIREMENTS, Report, Verdict

__all__ = ["render_junit"]


def render_junit(report: Report) -> str:
    counts = report.counts()
    root = ET.Element(
        "testsuites",
        name="kaitiaki probe",
        tests=str(len(report.results)),
        failures=str(counts[Verdict.FAIL.value]),
        errors=str(counts[Verdict.ERROR.value]),
        skipped=str(
            counts[Verdict.SKIPPED.value] + counts[Verdict.NOT_APPLICABLE.value]
        ),
    )
    for row, results in report.by_row().items():
        requirement = REQUIREMENTS[row]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{row}. {requirement.title} ({requirement.catalogue_id})",
            tests=str(len(results)),
            failures=str(sum(r.verdict == Verdict.FAIL for r in results)),
            errors=str(sum(r.verdict == Verdict.ERROR for r in results)),
            skipped=str(
                sum(
                    r.verdict in (Verdict.SKIPPED, Verdict.NOT_APPLICABLE)
                    for r in results
                )
            ),
        )
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"requirement{row}.{result.check.id.split('.')[0]}",
                name=f"{result.check.id}: {result.check.title}",
                time=f"{result.seconds:.3f}",
            )
            text = f"{result.outcome.summary}\nFix: {result.check.remedy}"
            if result.verdict == Verdict.FAIL:
                ET.SubElement(
                    case, "failure", message=result.outcome.summary
                ).text = text
            elif result.verdict == Verdict.ERROR:
                ET.SubElement(case, "error", message=result.outcome.summary).text = text
            elif result.verdict in (Verdict.SKIPPED, Verdict.NOT_APPLICABLE):
                ET.SubElement(case, "skipped", message=result.outcome.summary)
            ET.SubElement(case, "properties").extend(
                [
                    ET.Element(
                        "property", name="hnzas", value=" ".join(result.check.hnzas)
                    )
                ]
            )
    ET.indent(root)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + ET.tostring(root, encoding="unicode")
        + "\n"
    )
