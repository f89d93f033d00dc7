"""The hardened Kaitiaki stack passes every applicable check, and the reports
of that run are well-formed, redacted, and readable in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from tests.probe.conftest import Stack

from kaitiaki.probe import Report, Verdict, exit_status, write_reports
from kaitiaki.probe.model import Severity

ROOT = Path(__file__).parents[2]
SNAPSHOT = ROOT.parent / "shared/data/pypa-advisories"
ARTEFACTS = ROOT / ".artefacts"


@pytest.fixture(scope="module")
def hardened(stack: Stack) -> Report:
    from kaitiaki.probe import run_probe

    # One package's advisories keep the run short; the lock pins jinja2.
    profile = stack.profile(
        dependencies={
            "requirements": [str(ROOT / "requirements.lock")],
            "advisories": str(SNAPSHOT / "vulns" / "jinja2"),
        }
    )
    with stack.gateway(None) as base:
        return run_probe(base, profile)


def test_probe_kaitiaki_passes_every_applicable_check(hardened: Report) -> None:
    unexpected = [
        (r.check.id, r.verdict.value, r.outcome.summary)
        for r in hardened.results
        if r.verdict not in (Verdict.PASS, Verdict.NOT_APPLICABLE)
    ]
    assert unexpected == []
    by_id = {r.check.id: r.verdict for r in hardened.results}
    assert by_id["throttle.burst"] is Verdict.PASS
    assert by_id["as.revocation"] is Verdict.PASS
    assert by_id["log.no-canaries"] is Verdict.PASS
    assert by_id["log.refusals-audited"] is Verdict.PASS
    assert by_id["tls.version-floor"] is Verdict.NOT_APPLICABLE


def test_probe_kaitiaki_stays_within_budget(hardened: Report, stack: Stack) -> None:
    assert hardened.requests_sent <= stack.profile().safety.max_requests


def test_probe_exit_status_follows_threshold(hardened: Report) -> None:
    failed = {r.check.severity for r in hardened.results if r.verdict is Verdict.FAIL}
    assert exit_status(hardened, Severity.CRITICAL) == 0
    assert exit_status(hardened, Severity.LOW) == (1 if failed else 0)


@pytest.fixture(scope="module")
def written(hardened: Report, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_reports(hardened, tmp_path_factory.mktemp("reports"))


def test_probe_reports_hold_no_token_or_nhi(written: list[Path]) -> None:
    for path in written:
        text = path.read_text()
        assert "eyJ" not in text, path.name
        assert not re.search(r"Bearer [A-Za-z0-9_\-]{20,}", text), path.name
        assert not re.search(r"\bZZZ00\d\d\b", text), path.name


def test_probe_json_and_junit_agree(written: list[Path], hardened: Report) -> None:
    data = json.loads(written[0].read_text())
    assert [r["row"] for r in data["requirements"]] == list(range(1, 9))
    checks = [c for r in data["requirements"] for c in r["checks"]]
    assert len(checks) == len(hardened.results)
    junit = ET.fromstring(written[1].read_text())
    cases = junit.findall(".//testcase")
    assert len(cases) == len(hardened.results)
    failures = len(junit.findall(".//failure"))
    assert failures == sum(r.verdict is Verdict.FAIL for r in hardened.results)


def test_probe_sarif_is_2_1_0(written: list[Path], hardened: Report) -> None:
    sarif = json.loads(written[2].read_text())
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == len(run["results"]) == len(hardened.results)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["kind"] in {"pass", "fail", "notApplicable", "review"}


def test_probe_html_is_self_contained(written: list[Path]) -> None:
    html = written[3].read_text()
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "authn.alg-none" in html and "HNZAS_MUST_VALIDATE_OAUTH2_TOKENS" in html


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    # The CI script installs it; a bare checkout installs it here.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"],
        env=env,
        check=False,
        capture_output=True,
        timeout=600,
    )
    found = shutil.which("chromium")
    assert found, "Debian chromium is needed to render the report (see .ci/run)"
    return found


def test_probe_html_renders_in_headless_chromium(
    written: list[Path], tmp_path: Path
) -> None:
    ARTEFACTS.mkdir(exist_ok=True)
    screenshot = ARTEFACTS / "probe-report.png"
    screenshot.unlink(missing_ok=True)
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--hide-scrollbars",
        "--window-size=1280,2000",
        f"--screenshot={screenshot}",
        written[3].as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert screenshot.stat().st_size > 20_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
