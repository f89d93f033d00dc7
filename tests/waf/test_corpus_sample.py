"""A sample of both benchmark corpora through the whole gateway, every run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.gateway.conftest import GatewayUnderTest, StandIn

DATA = Path(__file__).parent / "data"


def _load(name: str) -> list[dict[str, Any]]:
    return list(json.loads((DATA / name).read_text("utf-8")))


def _send(gw: GatewayUnderTest, token: str, item: dict[str, Any]) -> Any:
    headers = [(n, v) for n, v in item["headers"]]
    headers.append(("Authorization", f"Bearer {token}"))
    return gw.client.request(
        item["method"],
        item["target"],
        headers=headers,
        content=item["body"].encode("utf-8", "surrogateescape"),
    )


def test_fhir_benign_sample_is_never_blocked(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    # The sample holds Patient/$summary, an operation with a scope of its own.
    summary = "http://hl7.org/fhir/OperationDefinition/Patient-summary"
    token = standin.token({"scope": f"system/*.cruds {summary}"})
    blocked = []
    for item in _load("fhir-benign.json"):
        response = _send(gateway, token, item)
        if response.status_code == 403:
            blocked.append((item["target"], response.json()["issue"][0]["code"]))
    assert blocked == []
    assert len(gateway.recorder.requests) >= 50


def test_crs_attack_sample_is_blocked(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    token = standin.token({"scope": "system/*.cruds"})
    missed = []
    attacks = _load("crs-attacks.json")
    for item in attacks:
        response = _send(gateway, token, item)
        body_ok = item["method"] == "HEAD" or b'"security"' in response.content
        if response.status_code != 403 or not body_ok:
            missed.append((item["case"], response.status_code))
    assert missed == []
    assert gateway.recorder.requests == []
    events = gateway.events()
    assert len(events) == len(attacks)
    assert all(event["waf_score"] >= 5 and event["waf_rules"] for event in events)
    assert {event["refusal_step"] for event in events} == {"filter"}
