"""Search by _id, identifier, patient, subject and _count, by GET and POST."""

from __future__ import annotations

from typing import Any

import pytest
from refapi_support import TestClient

NHI = "https://standards.digital.health.nz/ns/nhi-id"
HPI_PERSON = "https://standards.digital.health.nz/ns/hpi-person-id"
HPI_ORG = "https://standards.digital.health.nz/ns/hpi-organisation-id"
HPI_FACILITY = "https://standards.digital.health.nz/ns/hpi-facility-id"


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def test_search_without_params_returns_searchset_bundle(client: TestClient) -> None:
    response = client.get("/fhir/Patient")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.headers["cache-control"] == "no-store"
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 10
    assert bundle["link"] == [
        {"relation": "self", "url": "http://testserver/fhir/Patient"}
    ]
    entry = bundle["entry"][0]
    assert entry["search"] == {"mode": "match"}
    assert (
        entry["fullUrl"] == f"http://testserver/fhir/Patient/{entry['resource']['id']}"
    )


def test_search_by_id_list_is_or(client: TestClient) -> None:
    bundle = client.get("/fhir/Patient?_id=pat-1,pat-3,nope").json()

    assert bundle["total"] == 2
    assert sorted(_ids(bundle)) == ["pat-1", "pat-3"]


def test_search_repeated_params_are_and(client: TestClient) -> None:
    bundle = client.get("/fhir/Patient?_id=pat-1,pat-2&_id=pat-2,pat-3").json()

    assert _ids(bundle) == ["pat-2"]


@pytest.mark.parametrize(
    ("resource_type", "value", "expected"),
    [
        ("Patient", f"{NHI}|ZXE24NV", ["pat-6"]),
        ("Patient", "ZAC5361", ["pat-2"]),
        ("Patient", f"{NHI}|ZZZ0016,{NHI}|ZAK21MS", ["pat-1", "pat-7"]),
        ("Patient", f"{HPI_PERSON}|ZZZ0016", []),
        ("Patient", "|ZZZ0016", []),
        ("Practitioner", f"{HPI_PERSON}|99ZZZS", ["prac-1"]),
        ("Organization", f"{HPI_ORG}|GZZ956-B", ["org-2"]),
        ("Location", f"{HPI_FACILITY}|FZZ997-J", ["loc-2"]),
        ("Location", f"{HPI_FACILITY}|", ["loc-1", "loc-2"]),
    ],
)
def test_search_by_identifier_matches(
    client: TestClient, resource_type: str, value: str, expected: list[str]
) -> None:
    response = client.get(f"/fhir/{resource_type}", params={"identifier": value})

    assert response.status_code == 200
    assert sorted(_ids(response.json())) == expected


def test_search_by_identifier_without_system_matches_empty_system(
    client: TestClient,
) -> None:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"value": "local-7"}]},
    ).json()

    bundle = client.get("/fhir/Patient", params={"identifier": "|local-7"}).json()

    assert _ids(bundle) == [created["id"]]


@pytest.mark.parametrize(
    ("resource_type", "param", "value", "expected"),
    [
        ("Encounter", "patient", "pat-1", ["enc-1"]),
        ("Encounter", "subject", "Patient/pat-2", ["enc-2"]),
        (
            "Observation",
            "patient",
            "Patient/pat-1",
            ["obs-1", "obs-2", "obs-3", "obs-4"],
        ),
        ("Observation", "subject", "pat-2", ["obs-5", "obs-6", "obs-7", "obs-8"]),
        ("Condition", "patient", "pat-2", ["cond-2", "cond-3"]),
        ("Condition", "subject", "Patient/pat-1,Patient/pat-4", ["cond-1", "cond-4"]),
        ("AllergyIntolerance", "patient", "pat-3", ["allergy-2"]),
        ("AllergyIntolerance", "subject", "Patient/pat-1", ["allergy-1"]),
        ("Consent", "patient", "pat-2", ["consent-2"]),
        ("Consent", "subject", "pat-3", ["consent-3"]),
        ("Consent", "patient", "pat-9", []),
        ("Condition", "subject", "Group/pat-1", []),
    ],
)
def test_search_by_patient_reference_matches(
    client: TestClient,
    resource_type: str,
    param: str,
    value: str,
    expected: list[str],
) -> None:
    response = client.get(f"/fhir/{resource_type}", params={param: value})

    assert response.status_code == 200
    bundle = response.json()
    assert sorted(_ids(bundle)) == sorted(expected)
    assert bundle["total"] == len(expected)


def test_search_by_patient_finds_created_resource(client: TestClient) -> None:
    created = client.post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": "Patient/pat-9"},
        },
    ).json()

    bundle = client.get("/fhir/Observation?patient=pat-9").json()

    assert _ids(bundle) == [created["id"]]


def test_search_count_limits_entries_not_total(client: TestClient) -> None:
    bundle = client.get("/fhir/Observation?_count=3").json()

    assert bundle["total"] == 20
    assert len(bundle["entry"]) == 3


def test_search_count_defaults_to_twenty(client: TestClient) -> None:
    for _ in range(5):
        client.post("/fhir/Observation", json={"resourceType": "Observation"})

    bundle = client.get("/fhir/Observation").json()

    assert bundle["total"] == 25
    assert len(bundle["entry"]) == 20


def test_search_count_zero_returns_total_only(client: TestClient) -> None:
    bundle = client.get("/fhir/Patient?_count=0").json()

    assert bundle["total"] == 10
    assert bundle["entry"] == []


def test_search_count_hundred_is_accepted(client: TestClient) -> None:
    assert client.get("/fhir/Observation?_count=100").status_code == 200


def test_search_combines_params_with_and(client: TestClient) -> None:
    bundle = client.get("/fhir/Observation?patient=pat-1&_id=obs-2,obs-5").json()

    assert _ids(bundle) == ["obs-2"]


def test_search_self_link_carries_params(client: TestClient) -> None:
    bundle = client.get("/fhir/Consent?patient=pat-1&_count=5").json()

    expected = "http://testserver/fhir/Consent?patient=pat-1&_count=5"
    assert bundle["link"][0]["url"] == expected


def test_search_post_form_matches_get(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{NHI}|ZKC4633"},
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert _ids(response.json()) == ["pat-3"]


def test_search_post_form_combines_with_query(client: TestClient) -> None:
    response = client.post(
        "/fhir/Observation/_search?patient=pat-2", data={"_count": "2"}
    )

    bundle = response.json()
    assert bundle["total"] == 4
    assert len(bundle["entry"]) == 2


def test_search_post_without_body_returns_all(client: TestClient) -> None:
    response = client.post("/fhir/Location/_search")

    assert response.status_code == 200
    assert response.json()["total"] == 2


def test_search_get_on_search_path_works(client: TestClient) -> None:
    response = client.get("/fhir/Organization/_search?identifier=G00001-G")

    assert _ids(response.json()) == ["org-1"]
