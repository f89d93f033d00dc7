"""The reference API against the real PostgreSQL server, in a schema of its own.

Each run creates a uniquely named schema, points the API at it through the
connection's ``search_path`` and drops it afterwards, so parallel runs do not
collide. An unreachable server fails the test rather than skipping it.
"""

from __future__ import annotations

import pytest
from refapi_support import TestClient

from kaitiaki.refapi import create_app
from kaitiaki.settings import RefApiSettings

NHI = "https://standards.digital.health.nz/ns/nhi-id"

pytestmark = pytest.mark.postgres


def test_postgres_create_read_search_update_delete(postgres_url: str) -> None:
    settings = RefApiSettings(database_url=postgres_url)

    with TestClient(create_app(settings)) as client:
        assert client.get("/fhir/Patient/pat-1").json()["identifier"][0]["value"] == (
            "ZZZ0016"
        )
        seeded = client.get("/fhir/Patient", params={"identifier": f"{NHI}|ZXE24NV"})
        assert [e["resource"]["id"] for e in seeded.json()["entry"]] == ["pat-6"]

        created = client.post(
            "/fhir/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [{"system": NHI, "value": "ZAT2518"}],
            },
        )
        assert created.status_code == 201
        patient = created.json()
        patient_id = patient["id"]
        assert client.get(f"/fhir/Patient/{patient_id}").json() == patient

        found = client.get("/fhir/Patient?identifier=ZAT2518").json()
        assert found["total"] == 1

        patient["gender"] = "other"
        updated = client.put(f"/fhir/Patient/{patient_id}", json=patient)
        assert updated.status_code == 200
        assert updated.json()["meta"]["versionId"] == "2"

        observations = client.get("/fhir/Observation?patient=Patient/pat-2&_count=2")
        assert observations.json()["total"] == 4
        assert len(observations.json()["entry"]) == 2

        assert client.delete(f"/fhir/Patient/{patient_id}").status_code == 204
        assert client.delete(f"/fhir/Patient/{patient_id}").status_code == 204
        assert client.get(f"/fhir/Patient/{patient_id}").status_code == 404
        assert client.get("/fhir/Patient?identifier=ZAT2518").json()["total"] == 0


def test_postgres_restart_does_not_reseed(postgres_url: str) -> None:
    settings = RefApiSettings(database_url=postgres_url)

    with TestClient(create_app(settings)) as client:
        assert client.delete("/fhir/Patient/pat-1").status_code == 204

    with TestClient(create_app(settings)) as client:
        assert client.get("/fhir/Patient/pat-1").status_code == 404
        assert client.get("/fhir/Patient?_count=0").json()["total"] == 9
