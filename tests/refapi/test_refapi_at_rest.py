"""Patient-identifying fields are sealed at rest, in SQLite and PostgreSQL.

The raw rows are read back with plain SQL: no NHI, name, birth date, phone
or address may appear in clear, while read and identifier search still work,
and key rotation re-protects every row under the new keys.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from refapi_support import TestClient
from sqlalchemy import create_engine, text

from kaitiaki.iam.keyring import KeyRing
from kaitiaki.refapi import create_app
from kaitiaki.refapi.protect import reprotect_database
from kaitiaki.settings import RefApiSettings

NHI = "https://standards.digital.health.nz/ns/nhi-id"
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": NHI, "value": "ZAT2518"}],
    "name": [{"family": "Wharepapa", "given": ["Hinemoa"]}],
    "birthDate": "1987-03-14",
    "telecom": [{"system": "phone", "value": "021-555-0199"}],
    "address": [{"line": ["12 Tītī Street"], "city": "Ōtautahi"}],
    "gender": "female",
}
CLEAR_FORBIDDEN = (
    "ZAT2518",
    "Wharepapa",
    "Hinemoa",
    "1987-03-14",
    "021-555-0199",
    "Tītī",
    "Ōtautahi",
    "ZZZ0016",
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/refapi.sqlite"


def _raw_rows(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM refapi_resource")).all()
            rows += conn.execute(text("SELECT * FROM refapi_token")).all()
    finally:
        engine.dispose()
    return "\n".join(repr(tuple(row)) for row in rows)


def _exercise(url: str, key_dir: Path) -> None:
    settings = RefApiSettings(database_url=url, key_dir=str(key_dir))
    with TestClient(create_app(settings)) as client:
        created = client.post("/fhir/Patient", json=PATIENT)
        assert created.status_code == 201
        patient_id = created.json()["id"]

        raw = _raw_rows(url)
        for value in CLEAR_FORBIDDEN:
            assert value not in raw, value

        read = client.get(f"/fhir/Patient/{patient_id}").json()
        assert read["name"] == PATIENT["name"]
        assert read["birthDate"] == PATIENT["birthDate"]
        found = client.get("/fhir/Patient", params={"identifier": f"{NHI}|ZAT2518"})
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [patient_id]
        assert client.get("/fhir/Patient?identifier=ZZZ0016").json()["total"] == 1


def _rotate_and_check(url: str, key_dir: Path) -> None:
    settings = RefApiSettings(database_url=url, key_dir=str(key_dir))
    data = KeyRing.in_store("refapi-data", key_dir)
    index = KeyRing.in_store("refapi-index", key_dir)
    old_data, old_index = data.current().kid, index.current().kid
    now = int(time.time())
    data.rotate(now, 3600)
    index.rotate(now, 3600)

    assert reprotect_database(settings, now) >= 10
    assert reprotect_database(settings, now) == 0

    raw = _raw_rows(url)
    assert str(old_data) not in raw and str(old_index) not in raw
    for value in CLEAR_FORBIDDEN:
        assert value not in raw, value
    with TestClient(create_app(settings)) as client:
        found = client.get("/fhir/Patient", params={"identifier": "ZAT2518"}).json()
        assert found["entry"][0]["resource"]["name"] == PATIENT["name"]


def test_at_rest_sqlite_rows_hold_no_identifying_values(
    sqlite_url: str, tmp_path: Path
) -> None:
    _exercise(sqlite_url, tmp_path / "keys")
    _rotate_and_check(sqlite_url, tmp_path / "keys")


@pytest.mark.postgres
def test_at_rest_postgres_rows_hold_no_identifying_values(
    postgres_url: str, tmp_path: Path
) -> None:
    _exercise(postgres_url, tmp_path / "keys")
    _rotate_and_check(postgres_url, tmp_path / "keys")


def test_at_rest_search_during_overlap_before_reindex(
    sqlite_url: str, tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys"
    settings = RefApiSettings(database_url=sqlite_url, key_dir=str(key_dir))
    with TestClient(create_app(settings)):
        pass
    KeyRing.in_store("refapi-index", key_dir).rotate(int(time.time()), 3600)
    KeyRing.in_store("refapi-data", key_dir).rotate(int(time.time()), 3600)

    from kaitiaki.refapi.protect import FieldProtector
    from kaitiaki.refapi.search import parse_search
    from kaitiaki.refapi.store import ResourceStore

    engine = create_engine(sqlite_url)
    store = ResourceStore(engine, FieldProtector.for_settings(settings))
    total, found = store.search(parse_search("Patient", [("identifier", "ZZZ0016")]))
    engine.dispose()
    assert total == 1 and found[0]["identifier"][0]["value"] == "ZZZ0016"


def test_at_rest_rows_from_before_protection_are_protected_on_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE refapi_resource (resource_type VARCHAR(64), "
                "id VARCHAR(64), version INTEGER NOT NULL, last_updated VARCHAR(40) "
                "NOT NULL, content TEXT NOT NULL, PRIMARY KEY (resource_type, id))"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE refapi_token (pk INTEGER PRIMARY KEY, resource_type "
                "VARCHAR(64) NOT NULL, resource_id VARCHAR(64) NOT NULL, kind "
                "VARCHAR(32) NOT NULL, system VARCHAR(1024) NOT NULL, value "
                "VARCHAR(1024) NOT NULL)"
            )
        )
        meta = {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"}
        stored = {**PATIENT, "id": "old-1", "meta": meta}
        conn.execute(
            text(
                "INSERT INTO refapi_resource VALUES ('Patient', 'old-1', 1, "
                "'2026-01-01T00:00:00Z', :content)"
            ),
            {"content": json.dumps(stored)},
        )
        conn.execute(
            text(
                "INSERT INTO refapi_token (resource_type, resource_id, kind, system, "
                "value) VALUES ('Patient', 'old-1', 'identifier', :system, 'ZAT2518')"
            ),
            {"system": NHI},
        )
    engine.dispose()
    settings = RefApiSettings(database_url=sqlite_url, key_dir=str(tmp_path / "keys"))

    with TestClient(create_app(settings)) as client:
        found = client.get("/fhir/Patient", params={"identifier": "ZAT2518"}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == ["old-1"]
        assert client.get("/fhir/Patient/old-1").json()["name"] == PATIENT["name"]

    raw = _raw_rows(sqlite_url)
    for value in CLEAR_FORBIDDEN[:-1]:
        assert value not in raw, value
