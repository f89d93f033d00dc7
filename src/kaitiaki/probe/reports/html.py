"""The report as one self-contained HTML page for auditors: no scripts, no
external assets, every value escaped by Jinja2's autoescape."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from kaitiaki.probe.model import REQUIREMENTS, Report, Verdict, row_verdict

__all__ = ["VERDICT_TEXT", "render_html"]

VERDICT_TEXT = {
    Verdict.PASS: ("Pass", "The target behaved as the standard requires."),
    Verdict.FAIL: ("Fail", "The target did not behave as required; see the evidence."),
    Verdict.ERROR: (
        "Error",
        "The check could not finish (a network fault, a refused token request, "
        "the request budget); it proves nothing either way.",
    ),
    Verdict.NOT_APPLICABLE: (
        "Not applicable",
        "The rule does not apply to this target (e.g. TLS on a loopback test "
        "server, DPoP where it is not offered).",
    ),
    Verdict.SKIPPED: (
        "Not tested",
        "The profile did not allow the check (writes, bursts) or supplied no "
        "evidence (logs, SBOM).",
    ),
}


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("kaitiaki.probe", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    rows = report.by_row()
    requirements = [
        {
            "requirement": requirement,
            "verdict": row_verdict(rows[row]),
            "results": rows[row],
        }
        for row, requirement in REQUIREMENTS.items()
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        requirements=requirements,
        counts=report.counts(),
        verdict_text=VERDICT_TEXT,
        Verdict=Verdict,
    )
