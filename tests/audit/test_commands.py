"""`kaitiaki audit tail | search | export | verify` on a SQLite trail."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import anyio
import pytest

from kaitiaki.audit import Recorder, load_audit_keys, open_sink
from kaitiaki.audit.fhir import to_bundle
from kaitiaki.cli import main
from kaitiaki.settings import load_settings
from tests.audit.conftest import request_event

TOML = """
[gateway]
upstream = "http://127.0.0.1:9/fhir"
instance = "gw-a"
[auth]
issuer = "http://127.0.0.1:9"
audience = "https://gw.example/fhir"
[audit]
sink = "sqlite"
path = "{path}"
"""


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    config = tmp_path / "kaitiaki.toml"
    config.write_text(TOML.format(path=tmp_path / "var" / "audit.sqlite"))
    config.chmod(0o600)  # the gateway refuses settings others can read
    settings = load_settings(config).audit
    keys = load_audit_keys(settings)
    recorder = Recorder(settings, "gw-a", open_sink(settings), keys)
    patient = keys.pseudonymiser.patient("ZZZ0016")

    async def write() -> None:
        await recorder.record(request_event(1, patient=patient, query="patient=h:1"))
        await recorder.record(
            request_event(
                2,
                client_id="other",
                status=403,
                outcome="refused",
                refusal_code="scope_type",
                refusal_step="authorise",
                organisation="GZZ123-K",
                facility="FZZ123-C",
                purpose_of_use="TREAT",
            )
        )
        await recorder.record(request_event(3, interaction="search-type"))

    anyio.run(write)
    recorder.security_event("admin_action", client_id="admin", detail="client_disabled")
    recorder.close()
    return config


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_audit_search_by_client_outcome_patient_and_correlation(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(trail), "audit", "search"]

    _, by_client = _run(capsys, *config, "--client", "other")
    _, by_outcome = _run(capsys, *config, "--outcome", "refused")
    _, by_patient = _run(capsys, *config, "--patient", "Patient/zzz0016")
    _, by_id = _run(capsys, *config, "--correlation-id", "corr-3")
    _, security = _run(capsys, *config, "--type", "security")

    assert [json.loads(x)["correlation_id"] for x in by_client.splitlines()] == [
        "corr-2"
    ]
    assert by_outcome == by_client
    assert [json.loads(x)["seq"] for x in by_patient.splitlines()] == [1]
    assert json.loads(by_id)["correlation_id"] == "corr-3"
    assert json.loads(security)["action"] == "admin_action"


def test_audit_tail_prints_the_latest(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _run(capsys, "--config", str(trail), "audit", "tail", "--limit", "2")
    assert [json.loads(x)["event_type"] for x in out.splitlines()] == [
        "security",
        "checkpoint",
    ]


def test_audit_export_fhir_bundle_follows_the_profile(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(
        capsys, "--config", str(trail), "audit", "export", "--format", "fhir"
    )

    bundle = json.loads(out)
    assert code == 0 and bundle["resourceType"] == "Bundle"
    events = [entry["resource"] for entry in bundle["entry"]]
    assert len(events) == 4
    read, refused, search, admin = events
    assert read["type"]["code"] == "rest" and read["action"] == "R"
    assert read["outcome"] == "0" and read["outcomeDesc"] == "200"
    assert read["meta"]["profile"][0].endswith("IHE.BasicAudit.Read")
    assert read["entity"][0]["detail"][0] == {
        "type": "correlationId",
        "valueString": "corr-1",
    }
    assert base64.b64decode(read["entity"][0]["query"]) == b"patient=h:1"
    assert read["entity"][1]["role"]["code"] == "1"
    assert refused["outcome"] == "4" and refused["outcomeDesc"] == "403"
    org = refused["agent"][1]
    assert org["who"]["identifier"]["value"] == "GZZ123-K"
    assert org["location"]["identifier"]["value"] == "FZZ123-C"
    assert refused["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert refused["agent"][0]["who"]["display"] == "other"
    assert search["action"] == "E"
    assert (
        admin["type"]["code"] == "110113"
        and admin["subtype"][0]["code"] == "admin_action"
    )
    assert all(e["source"]["observer"]["display"] for e in events)


def test_audit_export_jsonl_is_one_record_per_line(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _run(capsys, "--config", str(trail), "audit", "export")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert to_bundle(records)["entry"]


def test_audit_verify_exit_code_and_report(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "--config", str(trail), "audit", "verify")
    assert code == 0 and "gw-a: OK" in out

    database = load_settings(trail).audit.path
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit_event SET status = 200 WHERE seq = 2")
    code, out = _run(capsys, "--config", str(trail), "audit", "verify")
    assert code == 1 and "BAD at row 2: edited" in out
