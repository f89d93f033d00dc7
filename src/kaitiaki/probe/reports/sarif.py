"""The report as SARIF 2.1.0: one rule per check, one result per check run,
so code-scanning dashboards can show findings against the API."""

from __future__ import annotations

import json
from typing import Any

from kaitiaki.probe.model import REQUIREMENTS, Report, Severity, Verdict

__all__ = ["render_sarif"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
}
_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}


def _rule(check: Any) -> dict[str, Any]:
    requirement = REQUIREMENTS[check.row]
    return {
        "id": check.id,
        "name": check.id.replace(".", "_").replace("-", "_"),
        "shortDescription": {"text": check.title},
        "fullDescription": {
            "text": f"Requirement {check.row} ({requirement.catalogue_id}): "
            f"{requirement.text}"
        },
        "help": {"text": check.remedy},
        "defaultConfiguration": {"level": _LEVEL[check.severity]},
        "properties": {
            "tags": ["security", f"requirement-{check.row}", *check.hnzas],
            "security-severity": _SCORE[check.severity],
        },
    }


def _kind(verdict: Verdict) -> tuple[str, str]:
    if verdict == Verdict.FAIL:
        return "fail", ""
    if verdict == Verdict.PASS:
        return "pass", "none"
    if verdict == Verdict.ERROR:
        return "review", "none"
    return "notApplicable", "none"


def _utc(stamp: str) -> str:
    return stamp.replace("+00:00", "Z")


def render_sarif(report: Report) -> str:
    results = []
    rules = []
    for index, result in enumerate(report.results):
        check = result.check
        rules.append(_rule(check))
        kind, level = _kind(result.verdict)
        entry: dict[str, Any] = {
            "ruleId": check.id,
            "ruleIndex": index,
            "kind": kind,
            "level": level or _LEVEL[check.severity],
            "message": {"text": result.outcome.summary},
            "locations": [
                {"physicalLocation": {"artifactLocation": {"uri": report.base_url}}}
            ],
        }
        results.append(entry)
    sarif = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "kaitiaki-probe",
                        "version": report.probe_version,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": _utc(report.started),
                        "endTimeUtc": _utc(report.finished),
                    }
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2) + "\n"
