"""``kaitiaki probe``: a black-box conformance probe of any deployed API
against Health NZ's cloud API security standard, with reports an auditor can
read (JSON, JUnit XML, SARIF 2.1.0, HTML)."""

from __future__ import annotations

from kaitiaki.probe.model import Report, Severity, Verdict
from kaitiaki.probe.profile import Profile, demo_profile, load_profile
from kaitiaki.probe.reports import write_reports
from kaitiaki.probe.runner import run_probe, select_checks

__all__ = [
    "Profile",
    "Report",
    "Severity",
    "Verdict",
    "demo_profile",
    "exit_status",
    "load_profile",
    "run_probe",
    "select_checks",
    "write_reports",
]


def exit_status(report: Report, fail_on: Severity) -> int:
    """1 when a check of at least ``fail_on`` severity failed or errored."""
    for result in report.results:
        if result.verdict in (Verdict.FAIL, Verdict.ERROR) and (
            result.check.severity.rank >= fail_on.rank
        ):
            return 1
    return 0
