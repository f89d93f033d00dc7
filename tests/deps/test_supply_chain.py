"""SBOM auditing, the licence report and the pip-audit summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaitiaki.cli import main
from kaitiaki.deps.licences import licence_report
from kaitiaki.deps.pipaudit import summarise_pip_audit
from kaitiaki.deps.sbom import read_sbom
from kaitiaki.errors import ConfigError

SNAPSHOT = Path(__file__).resolve().parents[3] / "shared/data/pypa-advisories"


def _sbom(tmp_path: Path, components: list[dict[str, object]]) -> Path:
    path = tmp_path / "sbom.cdx.json"
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": components,
    }
    path.write_text(json.dumps(document))
    return path


def test_read_sbom_takes_pypi_purls_including_nested(tmp_path: Path) -> None:
    path = _sbom(
        tmp_path,
        [
            {"name": "Jinja2", "purl": "pkg:pypi/Jinja2@2.7"},
            {"name": "left-pad", "purl": "pkg:npm/left-pad@1.0.0"},
            {
                "name": "app",
                "components": [{"name": "x", "purl": "pkg:pypi/py_yaml@5.1?arch=x"}],
            },
        ],
    )

    pins = [(req.name, req.version) for req in read_sbom(path)]

    assert pins == [("jinja2", "2.7"), ("py-yaml", "5.1")]


@pytest.mark.parametrize("text", ["not json", '{"components": []}', "[]"])
def test_read_sbom_refuses_other_documents(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sbom.json"
    path.write_text(text)

    with pytest.raises(ConfigError):
        read_sbom(path)


def test_deps_audit_sbom_finds_known_vulnerability(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sbom(tmp_path, [{"name": "jinja2", "purl": "pkg:pypi/jinja2@2.7"}])
    advisories = str(SNAPSHOT / "vulns" / "jinja2")

    status = main(["deps", "audit", "--advisories", advisories, "--sbom", str(path)])

    output = capsys.readouterr().out
    assert status == 1
    assert "VULNERABLE jinja2==2.7 PYSEC-2014-8" in output
    assert "1 pinned requirements" in output and "advisory snapshot of 20" in output


def test_deps_audit_requirements_of_another_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("jinja2==3.1.6\n")
    advisories = str(SNAPSHOT / "vulns" / "jinja2")

    status = main(
        ["deps", "audit", "--advisories", advisories, "--requirements", str(path)]
    )

    assert status == 0
    assert "0 known vulnerabilities" in capsys.readouterr().out


def test_licence_report_covers_installed_distributions() -> None:
    report = {entry.name: entry for entry in licence_report()}

    assert "cryptography" in report and "pydantic" in report
    assert report["pydantic"].licence != "UNKNOWN"


@pytest.mark.parametrize(
    ("report", "available", "vulnerable"),
    [
        ("", False, ()),
        ('{"dependencies": [{"name": "a", "skip_reason": "not found"}]}', False, ()),
        ('{"dependencies": [{"name": "a", "version": "1", "vulns": []}]}', True, ()),
        (
            '{"dependencies": [{"name": "a", "version": "1", '
            '"vulns": [{"id": "X-1"}]}]}',
            True,
            ("a==1 X-1",),
        ),
    ],
)
def test_pip_audit_summary_tells_unavailable_apart(
    report: str, available: bool, vulnerable: tuple[str, ...]
) -> None:
    summary = summarise_pip_audit(report)

    assert summary.available is available
    assert summary.vulnerable == vulnerable
    assert ("unavailable" in summary.line()) is not available
