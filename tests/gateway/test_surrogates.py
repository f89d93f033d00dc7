"""Lone surrogates (``\\ud800`` with no partner) anywhere in a request: a
clear refusal or a normal answer, never a 500; the audit event is written
and the sink stays healthy for the next request. No UTF-8 encoder (RE2's,
SQLite's, PostgreSQL's) can write a lone surrogate, so one that reached
them used to fail the request, or leave the audit transaction open."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import (
    GatewayUnderTest,
    Recorder,
    StandIn,
    gateway_toml,
    raw_token,
    upstream_app,
)

FHIR = {"Accept": "application/fhir+json"}
LONE = "\\ud800"  # as a client writes it: six ASCII characters


@pytest.fixture
def sqlite_gateway(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[GatewayUnderTest]:
    with ThreadServer(upstream_app(recorder)) as upstream:
        toml = gateway_toml(standin.url, upstream.url, tmp_path)
        toml = toml.replace('sink = "jsonl"', 'sink = "sqlite"')
        toml = toml.replace("audit.jsonl", "audit.sqlite")
        settings = parse_settings(toml, source="test")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield GatewayUnderTest(client, recorder, tmp_path / "audit.sqlite")


def _statuses(path: Path) -> list[tuple[int, str | None]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT status, refusal_code FROM audit_event "
            "WHERE event_type = 'request' ORDER BY position"
        ).fetchall()
    return [(int(status), code) for status, code in rows]


def _bearer(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}


def _context(**fields: str) -> str:
    document = {
        "userIdentifier": "svc",
        "userRole": "PROV",
        "orgIdentifier": "GQX042-A",
        "facilityIdentifier": "FQX042-E",
        "purposeOfUse": ["TREAT"],
        **fields,
    }
    # json.dumps writes a lone surrogate as the escape "\ud800".
    return base64.b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/fhir/metadata", {"User-Agent": LONE}),
        ("/fhir/metadata", {"Referer": "%ud800"}),
        ("/fhir/metadata", {"X-Note": "\\ud83d\\ude00 \\udc00"}),
        (f"/fhir/metadata?_format=json&x={LONE}", {}),
        ("/fhir/metadata?_format=%5Cud800", {}),
    ],
    ids=["header escape", "header %u", "pair then lone low", "query", "query %5C"],
)
def test_a_lone_surrogate_in_a_public_request_is_not_a_500(
    sqlite_gateway: GatewayUnderTest, path: str, headers: dict[str, str]
) -> None:
    response = sqlite_gateway.client.get(path, headers={**FHIR, **headers})
    assert 200 <= response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "ud800" not in response.text
    assert _statuses(sqlite_gateway.audit_path)[-1][0] == response.status_code


def test_an_attack_behind_a_lone_surrogate_is_still_blocked(
    sqlite_gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = sqlite_gateway.client.get(
        f"/fhir/Patient?name={LONE}%3Cscript%3Ealert(1)%3C/script%3E",
        headers=_bearer(standin.token()),
    )
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    assert sqlite_gateway.recorder.requests == []


@pytest.mark.parametrize("claim", ["sub", "client_id", "scope", "jti"])
def test_a_token_claim_with_a_lone_surrogate_is_401_and_the_next_request_served(
    sqlite_gateway: GatewayUnderTest, standin: StandIn, claim: str
) -> None:
    # Signed as an issuer would that writes the escape (joserfc refuses to).
    header = {"alg": "ES256", "typ": "at+jwt", "kid": standin.key.kid}
    bad = raw_token(header, standin.claims(**{claim: "svc\ud800"}), standin.key)
    refused = sqlite_gateway.client.get("/fhir/Patient", headers=_bearer(bad))
    assert refused.status_code == 401
    assert refused.json()["resourceType"] == "OperationOutcome"
    served = sqlite_gateway.client.get(
        "/fhir/Patient", headers=_bearer(standin.token())
    )
    assert served.status_code == 200
    assert len(sqlite_gateway.recorder.requests) == 1
    assert [s for s, _ in _statuses(sqlite_gateway.audit_path)][-2:] == [401, 200]


@pytest.mark.parametrize("field", ["orgIdentifier", "userIdentifier", "userFullName"])
def test_a_request_context_with_a_lone_surrogate_is_400(
    sqlite_gateway: GatewayUnderTest, standin: StandIn, field: str
) -> None:
    headers = {
        **_bearer(standin.token()),
        "Request-Context": _context(**{field: "x\ud800"}),
    }
    refused = sqlite_gateway.client.get("/fhir/Patient", headers=headers)
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert sqlite_gateway.recorder.requests == []
    served = sqlite_gateway.client.get(
        "/fhir/Patient", headers=_bearer(standin.token())
    )
    assert served.status_code == 200
    assert [s for s, _ in _statuses(sqlite_gateway.audit_path)][-2:] == [400, 200]


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType":"Patient","gender":"\\ud800"}',
        b'{"resourceType":"Patient","name":[{"text":"a\\udfffb"}]}',
        b'{"resourceType":"Patient","\\ud800":"x"}',
    ],
    ids=["value", "low surrogate", "member name"],
)
def test_a_body_with_a_lone_surrogate_is_400_and_never_forwarded(
    sqlite_gateway: GatewayUnderTest, standin: StandIn, body: bytes
) -> None:
    headers = {
        **_bearer(standin.token({"scope": "system/*.cruds"})),
        "Content-Type": "application/fhir+json",
    }
    response = sqlite_gateway.client.post(
        "/fhir/Patient", content=body, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert sqlite_gateway.recorder.requests == []
    assert _statuses(sqlite_gateway.audit_path)[-1][0] == 400
