"""Batch and transaction Bundles in the reference API."""

from __future__ import annotations

from typing import Any

from refapi_support import FHIR_JSON, TestClient

HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _obs(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "test"},
        "subject": {"reference": f"Patient/{patient}"},
    }


def test_batch_runs_each_entry_with_its_own_status(client: TestClient) -> None:
    bundle = _bundle(
        "batch",
        {"request": {"method": "GET", "url": "Patient/pat-1"}},
        {"request": {"method": "GET", "url": "Observation?patient=Patient/pat-1"}},
        {"request": {"method": "GET", "url": "Patient/nope"}},
        {
            "request": {"method": "POST", "url": "Observation"},
            "resource": _obs("pat-1"),
        },
    )
    reply = client.post("/fhir", json=bundle, headers=HEADERS)
    assert reply.status_code == 200
    body = reply.json()
    assert body["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in body["entry"]]
    assert statuses == ["200 OK", "200 OK", "404", "201 Created"]
    assert body["entry"][0]["resource"]["id"] == "pat-1"
    assert body["entry"][1]["resource"]["type"] == "searchset"
    assert body["entry"][3]["response"]["location"].startswith(
        "http://testserver/fhir/Observation/"
    )


def test_transaction_resolves_uuid_references(client: TestClient) -> None:
    bundle = _bundle(
        "transaction",
        {
            "fullUrl": "urn:uuid:4b1c",
            "request": {"method": "POST", "url": "Patient"},
            "resource": {"resourceType": "Patient", "name": [{"family": "Tauira"}]},
        },
        {
            "request": {"method": "POST", "url": "Observation"},
            "resource": {**_obs("x"), "subject": {"reference": "urn:uuid:4b1c"}},
        },
    )
    reply = client.post("/fhir", json=bundle, headers=HEADERS)
    assert reply.status_code == 200
    patient, observation = (e["resource"] for e in reply.json()["entry"])
    assert observation["subject"]["reference"] == f"Patient/{patient['id']}"


def test_transaction_rolls_back_when_an_entry_fails(client: TestClient) -> None:
    before = client.get("/fhir/Observation?patient=pat-2", headers=HEADERS).json()
    bundle = _bundle(
        "transaction",
        {
            "request": {"method": "POST", "url": "Observation"},
            "resource": _obs("pat-2"),
        },
        {
            "request": {"method": "PUT", "url": "Observation/a"},
            "resource": _obs("pat-2"),
        },
    )
    reply = client.post("/fhir", json=bundle, headers=HEADERS)
    assert reply.status_code == 400
    assert reply.json()["resourceType"] == "OperationOutcome"
    after = client.get("/fhir/Observation?patient=pat-2", headers=HEADERS).json()
    assert after["total"] == before["total"]


def test_bundle_must_be_batch_or_transaction(client: TestClient) -> None:
    for body in (
        _bundle("collection"),
        {"resourceType": "Patient"},
        _bundle("batch", *[{"request": {"method": "GET", "url": "Patient"}}] * 101),
    ):
        reply = client.post("/fhir", json=body, headers=HEADERS)
        assert reply.status_code == 400
