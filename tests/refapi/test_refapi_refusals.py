"""Bad requests get the right 4xx OperationOutcome and never echo the input."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from refapi_support import TestClient
from sqlalchemy.exc import OperationalError

from kaitiaki.errors import ConfigError
from kaitiaki.refapi import create_app
from kaitiaki.refapi.store import ResourceStore
from kaitiaki.settings import RefApiSettings

MARKER = "ZQF54PVsecretmarker"


def _assert_outcome(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    assert body["issue"][0]["details"]["text"]
    assert MARKER not in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/fhir/{MARKER}"),
        ("GET", f"/fhir/{MARKER}/1"),
        ("POST", f"/fhir/{MARKER}"),
        ("PUT", f"/fhir/{MARKER}/1"),
        ("DELETE", f"/fhir/{MARKER}/1"),
        ("POST", f"/fhir/{MARKER}/_search"),
    ],
)
def test_unknown_type_is_404_not_supported(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json={"resourceType": MARKER, "id": "1"})

    _assert_outcome(response, 404, "not-supported")


def test_unknown_route_is_404_outcome(client: TestClient) -> None:
    response = client.get(f"/other/{MARKER}")

    _assert_outcome(response, 404, "not-found")


def test_unsupported_method_is_405_outcome(client: TestClient) -> None:
    response = client.patch("/fhir/Patient/pat-1", json={})

    _assert_outcome(response, 405, "not-supported")


@pytest.mark.parametrize(
    "query",
    [
        {MARKER: "1"},
        {"name": MARKER},
        {"identifier:exact": MARKER},
        {"patient": MARKER},
    ],
)
def test_search_unknown_param_is_400(client: TestClient, query: dict[str, str]) -> None:
    response = client.get("/fhir/Patient", params=query)

    _assert_outcome(response, 400, "invalid")


def test_search_unknown_param_in_form_is_400(client: TestClient) -> None:
    response = client.post("/fhir/Patient/_search", data={MARKER: "x"})

    _assert_outcome(response, 400, "invalid")


@pytest.mark.parametrize("count", ["-1", "101", "abc", "1.5", "", "\u0661"])
def test_search_bad_count_is_400(client: TestClient, count: str) -> None:
    response = client.get("/fhir/Patient", params={"_count": count})

    _assert_outcome(response, 400, "invalid")


def test_search_repeated_count_is_400(client: TestClient) -> None:
    response = client.get("/fhir/Patient?_count=1&_count=2")

    _assert_outcome(response, 400, "invalid")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("patient", f"Group/{MARKER}"),
        ("patient", f"Patient/{MARKER}!"),
        ("subject", f"Pat1ent/{MARKER}"),
        ("subject", ""),
        ("_id", "pat-1,,pat-2"),
    ],
)
def test_search_malformed_value_is_400(
    client: TestClient, param: str, value: str
) -> None:
    response = client.get("/fhir/Observation", params={param: value})

    _assert_outcome(response, 400, "invalid")


def test_search_identifier_with_two_bars_is_400(client: TestClient) -> None:
    response = client.get("/fhir/Patient", params={"identifier": f"a|b|{MARKER}"})

    _assert_outcome(response, 400, "invalid")


def test_search_post_with_json_body_is_415(client: TestClient) -> None:
    response = client.post("/fhir/Patient/_search", json={"identifier": MARKER})

    _assert_outcome(response, 415, "not-supported")


def test_create_wrong_resource_type_is_400(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json={"resourceType": "Observation"})

    _assert_outcome(response, 400, "invalid")


def test_create_missing_resource_type_is_400(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json={"name": [{"text": MARKER}]})

    _assert_outcome(response, 400, "invalid")


def test_update_id_mismatch_is_400(client: TestClient) -> None:
    body = {"resourceType": "Patient", "id": MARKER}

    response = client.put("/fhir/Patient/pat-1", json=body)

    _assert_outcome(response, 400, "invalid")
    assert client.get("/fhir/Patient/pat-1").json()["meta"]["versionId"] == "1"


def test_update_missing_body_id_is_400(client: TestClient) -> None:
    response = client.put("/fhir/Patient/pat-1", json={"resourceType": "Patient"})

    _assert_outcome(response, 400, "invalid")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_invalid_url_id_is_400(client: TestClient, method: str) -> None:
    response = client.request(
        method, f"/fhir/Patient/{MARKER}$", json={"resourceType": "Patient"}
    )

    _assert_outcome(response, 400, "invalid")


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType":"Patient","gender":"' + MARKER.encode() + b'","gender":"x"}',
        b'{"resourceType":"Patient","name":[{"text":"a","text":"'
        + MARKER.encode()
        + b'"}]}',
        b'{"resourceType":"Patient", ' + MARKER.encode(),
        b"not json " + MARKER.encode(),
        b"",
        b'{"resourceType":"Patient","x":NaN}',
        b'\xff{"resourceType":"Patient"}',
        b'["' + MARKER.encode() + b'"]',
        b'"' + MARKER.encode() + b'"',
        b"null",
        b"42",
    ],
)
def test_create_bad_json_body_is_400(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/fhir/Patient", content=body, headers={"content-type": "application/fhir+json"}
    )

    _assert_outcome(response, 400, "invalid")


@pytest.mark.parametrize(
    ("resource_type", "body"),
    [
        ("Patient", {"identifier": MARKER}),
        ("Patient", {"identifier": [MARKER]}),
        ("Observation", {"subject": MARKER}),
        ("Consent", {"patient": {"reference": 7}}),
        ("Patient", {"meta": MARKER}),
    ],
)
def test_create_malformed_indexed_element_is_400(
    client: TestClient, resource_type: str, body: dict[str, Any]
) -> None:
    response = client.post(
        f"/fhir/{resource_type}", json={"resourceType": resource_type, **body}
    )

    _assert_outcome(response, 400, "invalid")


def test_update_duplicate_keys_is_400(client: TestClient) -> None:
    body = b'{"resourceType":"Patient","id":"pat-1","id":"pat-1"}'

    response = client.put(
        "/fhir/Patient/pat-1",
        content=body,
        headers={"content-type": "application/json"},
    )

    _assert_outcome(response, 400, "invalid")


def test_create_too_big_body_is_413(client: TestClient) -> None:
    text = MARKER * (1_048_576 // len(MARKER) + 1)
    body = json.dumps({"resourceType": "Patient", "text": {"div": text}})

    response = client.post(
        "/fhir/Patient", content=body, headers={"content-type": "application/fhir+json"}
    )

    _assert_outcome(response, 413, "too-long")


def test_create_streamed_too_big_body_is_413(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65_536

    response = client.post(
        "/fhir/Patient",
        content=chunks(),
        headers={"content-type": "application/fhir+json"},
    )

    _assert_outcome(response, 413, "too-long")


def test_create_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b'{"resourceType":"Patient"}',
        headers={"content-type": "text/plain"},
    )

    _assert_outcome(response, 415, "not-supported")


def test_create_bad_content_length_is_400(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "-1"},
    )

    _assert_outcome(response, 400, "invalid")


def test_database_failure_is_500_outcome_without_detail(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(*args: object) -> None:
        raise OperationalError(f"SELECT {MARKER}", {}, Exception("disk I/O error"))

    monkeypatch.setattr(ResourceStore, "read", fail)

    with caplog.at_level(logging.ERROR, logger="kaitiaki.refapi"):
        response = client.get("/fhir/Patient/pat-1")

    _assert_outcome(response, 500, "exception")
    assert response.json()["issue"][0]["severity"] == "fatal"
    assert "disk I/O" not in response.text
    assert any(record.name == "kaitiaki.refapi" for record in caplog.records)


def test_create_app_bad_database_url_is_config_error() -> None:
    with pytest.raises(ConfigError, match="database_url"):
        create_app(RefApiSettings(database_url="not a url"))
