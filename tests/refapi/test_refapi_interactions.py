"""Read, create, update, delete and metadata against a SQLite database."""

from __future__ import annotations

import uuid
from typing import Any

from refapi_support import TestClient

from kaitiaki.refapi import create_app
from kaitiaki.settings import RefApiSettings

FHIR_JSON = "application/fhir+json"
SUPPORTED = {
    "Patient",
    "Practitioner",
    "Organization",
    "Location",
    "Encounter",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "Consent",
}


def _new_patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "https://standards.digital.health.nz/ns/nhi-id",
                "value": "ZZZ0024",
            }
        ],
        "name": [{"family": "Tauira", "given": ["Tama"]}],
        **extra,
    }


def _assert_fhir_headers(response: Any) -> None:
    assert response.headers["content-type"] == FHIR_JSON
    assert response.headers["cache-control"] == "no-store"


def test_metadata_lists_every_type_interaction_and_param(client: TestClient) -> None:
    response = client.get("/fhir/metadata")

    assert response.status_code == 200
    _assert_fhir_headers(response)
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["format"] == ["json"]
    resources = {item["type"]: item for item in body["rest"][0]["resource"]}
    assert set(resources) == SUPPORTED
    for name, item in resources.items():
        codes = {interaction["code"] for interaction in item["interaction"]}
        assert codes == {"read", "search-type", "create", "update", "delete"}
        params = {param["name"] for param in item["searchParam"]}
        if name in {"Patient", "Practitioner", "Organization", "Location"}:
            assert params == {"_id", "_count", "identifier"}
        else:
            assert params == {"_id", "_count", "patient", "subject"}


def test_read_seeded_patient_returns_resource_and_etag(client: TestClient) -> None:
    response = client.get("/fhir/Patient/pat-1")

    assert response.status_code == 200
    _assert_fhir_headers(response)
    body = response.json()
    assert body["id"] == "pat-1"
    assert body["identifier"][0]["value"] == "ZZZ0016"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'


def test_read_missing_resource_is_404_outcome(client: TestClient) -> None:
    response = client.get("/fhir/Patient/pat-999")

    assert response.status_code == 404
    _assert_fhir_headers(response)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"


def test_create_assigns_id_version_and_location(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        json=_new_patient(id="client-chosen", meta={"versionId": "9", "tag": []}),
    )

    assert response.status_code == 201
    _assert_fhir_headers(response)
    body = response.json()
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["tag"] == []
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    location = f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["location"] == location
    assert client.get(f"/fhir/Patient/{body['id']}").json() == body


def test_create_accepts_fhir_json_content_type(client: TestClient) -> None:
    response = client.post(
        "/fhir/Observation",
        content=b'{"resourceType":"Observation","status":"final"}',
        headers={"content-type": "application/fhir+json; charset=utf-8"},
    )

    assert response.status_code == 201
    assert response.json()["status"] == "final"


def test_update_existing_increments_version(client: TestClient) -> None:
    current = client.get("/fhir/Patient/pat-2").json()
    current["gender"] = "unknown"

    response = client.put("/fhir/Patient/pat-2", json=current)

    assert response.status_code == 200
    _assert_fhir_headers(response)
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    again = client.put("/fhir/Patient/pat-2", json=current)
    assert again.json()["meta"]["versionId"] == "3"
    assert client.get("/fhir/Patient/pat-2").json()["gender"] == "unknown"


def test_update_missing_resource_creates_it(client: TestClient) -> None:
    response = client.put("/fhir/Patient/pat-new", json=_new_patient(id="pat-new"))

    assert response.status_code == 201
    assert response.json()["meta"]["versionId"] == "1"
    expected = "http://testserver/fhir/Patient/pat-new/_history/1"
    assert response.headers["location"] == expected
    assert client.get("/fhir/Patient/pat-new").status_code == 200


def test_update_reindexes_identifier(client: TestClient) -> None:
    patient = client.get("/fhir/Patient/pat-1").json()
    patient["identifier"][0]["value"] = "ZAT2518"

    client.put("/fhir/Patient/pat-1", json=patient)

    assert client.get("/fhir/Patient?identifier=ZZZ0016").json()["total"] == 0
    assert client.get("/fhir/Patient?identifier=ZAT2518").json()["total"] == 1


def test_delete_removes_resource_and_is_idempotent(client: TestClient) -> None:
    first = client.delete("/fhir/Condition/cond-1")
    second = client.delete("/fhir/Condition/cond-1")

    assert first.status_code == 204
    assert first.content == b""
    assert first.headers["cache-control"] == "no-store"
    assert second.status_code == 204
    assert client.get("/fhir/Condition/cond-1").status_code == 404
    search = client.get("/fhir/Condition?patient=pat-1").json()
    assert all(entry["resource"]["id"] != "cond-1" for entry in search["entry"])


def test_create_app_creates_sqlite_directory(tmp_path: Any) -> None:
    database = tmp_path / "a" / "b" / "refapi.sqlite"
    settings = RefApiSettings(database_url=f"sqlite:///{database}")

    with TestClient(create_app(settings)) as test_client:
        assert test_client.get("/fhir/Patient/pat-1").status_code == 200
    assert database.is_file()


def test_create_app_keeps_data_across_restarts(
    refapi_settings: RefApiSettings,
) -> None:
    with TestClient(create_app(refapi_settings)) as first:
        created = first.post("/fhir/Patient", json=_new_patient()).json()
        first.delete("/fhir/Patient/pat-10")

    with TestClient(create_app(refapi_settings)) as second:
        assert second.get(f"/fhir/Patient/{created['id']}").status_code == 200
        # Not re-seeded: the database was not empty.
        assert second.get("/fhir/Patient/pat-10").status_code == 404
        assert second.get("/fhir/Patient?_count=0").json()["total"] == 10


def test_create_app_honours_custom_fhir_base(tmp_path: Any) -> None:
    settings = RefApiSettings(
        database_url=f"sqlite:///{tmp_path}/refapi.sqlite", fhir_base="/api/fhir"
    )

    with TestClient(create_app(settings)) as test_client:
        assert test_client.get("/api/fhir/Patient/pat-1").status_code == 200
        assert test_client.get("/fhir/Patient/pat-1").status_code == 404
        created = test_client.post("/api/fhir/Patient", json=_new_patient())
    assert created.headers["location"].startswith("http://testserver/api/fhir/Patient/")
