"""Reports of a probe run: JSON, JUnit XML, SARIF 2.1.0 and a self-contained
HTML page, all built from the same redacted report."""

from __future__ import annotations

from pathlib import Path

from kaitiaki.probe.model import Report
from kaitiaki.probe.reports.html import render_html
from kaitiaki.probe.reports.json import render_json
from kaitiaki.probe.reports.junit import render_junit
from kaitiaki.probe.reports.sarif import render_sarif

__all__ = [
    "render_html",
    "render_json",
    "render_junit",
    "render_sarif",
    "write_reports",
]

FILES = {
    "kaitiaki-probe.json": render_json,
    "kaitiaki-probe.junit.xml": render_junit,
    "kaitiaki-probe.sarif": render_sarif,
    "kaitiaki-probe.html": render_html,
}


def write_reports(report: Report, folder: Path) -> list[Path]:
    """Write every format into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in FILES.items():
        path = folder / name
        path.write_text(render(report), encoding="utf-8")
        written.append(path)
    return written
