"""The report as JSON: the machine-readable record every other format mirrors."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from kaitiaki.probe.model import REQUIREMENTS, CheckResult, Report, row_verdict

__all__ = ["render_json", "report_data"]


def _result(result: CheckResult) -> dict[str, Any]:
    check = result.check
    return {
        "id": check.id,
        "title": check.title,
        "requirement": check.row,
        "hnzas": list(check.hnzas),
        "severity": check.severity.value,
        "verdict": result.verdict.value,
        "summary": result.outcome.summary,
        "remedy": check.remedy,
        "limitation": check.limitation,
        "seconds": result.seconds,
        "evidence": [asdict(exchange) for exchange in result.outcome.evidence],
    }


def report_data(report: Report) -> dict[str, Any]:
    rows = report.by_row()
    return {
        "tool": {"name": "kaitiaki probe", "version": report.probe_version},
        "target": report.base_url,
        "profile": report.profile,
        "started": report.started,
        "finished": report.finished,
        "requests_sent": report.requests_sent,
        "counts": report.counts(),
        "requirements": [
            {
                "row": row,
                "id": requirement.catalogue_id,
                "title": requirement.title,
                "text": requirement.text,
                "verdict": row_verdict(rows[row]).value,
                "checks": [_result(result) for result in rows[row]],
            }
            for row, requirement in REQUIREMENTS.items()
        ],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"
