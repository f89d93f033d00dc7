"""What the pipeline charges once a request is authorised: the HPI
organisation its Request-Context names, when the client is registered to it
(shared by all of that organisation's clients, separate from other
organisations), and each entry of a Bundle."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import Recorder, StandIn, gateway_toml, upstream_app

FHIR = {"Accept": "application/fhir+json"}
LIMITS = """
[limits.organisation."*"]
rate = "2/minute"
[limits.plans.big."*"]
rate = "100/minute"
[limits.organisations]
"G00001-G" = "big"
[authorise.context.client_organisations]
svc-a = "GQX042-A"
svc-b = "GQX042-A"
svc-c = "G0M086-B"
svc-d = "G00001-G"
"""


def _context(client_id: str, organisation: str) -> str:
    value = {
        "userIdentifier": client_id,
        "userRole": "110150",
        "purposeOfUse": ["RECORDMGT"],
        "userFullName": "Sync Job",
        "orgIdentifier": organisation,
    }
    return base64.b64encode(json.dumps(value).encode()).decode()


@pytest.fixture
def limited(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[tuple[httpx.Client, list[dict[str, object]]]]:
    with ThreadServer(upstream_app(recorder)) as upstream:
        text = gateway_toml(standin.url, upstream.url, tmp_path, extra=LIMITS)
        settings = parse_settings(text, source="test")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield client, recorder.requests


def _get(
    client: httpx.Client, standin: StandIn, client_id: str, organisation: str
) -> httpx.Response:
    token = standin.token({"client_id": client_id, "sub": client_id})
    headers = {
        **FHIR,
        "Authorization": f"Bearer {token}",
        "Request-Context": _context(client_id, organisation),
    }
    return client.get("/fhir/Patient", headers=headers)


def test_one_organisation_shares_its_limit_across_clients(
    limited: tuple[httpx.Client, list[dict[str, object]]], standin: StandIn
) -> None:
    client, upstream = limited
    assert _get(client, standin, "svc-a", "GQX042-A").status_code == 200
    assert _get(client, standin, "svc-b", "GQX042-A").status_code == 200

    refused = _get(client, standin, "svc-a", "GQX042-A")

    assert refused.status_code == 429
    assert refused.json()["issue"][0]["code"] == "throttled"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(upstream) == 2
    # Another organisation, and one on a larger plan, are unaffected.
    assert _get(client, standin, "svc-c", "G0M086-B").status_code == 200
    for _ in range(3):
        assert _get(client, standin, "svc-d", "G00001-G").status_code == 200
    assert len(upstream) == 6


def test_a_self_declared_organisation_is_not_counted(
    limited: tuple[httpx.Client, list[dict[str, object]]], standin: StandIn
) -> None:
    """A client not registered to an organisation can name it, but neither
    uses up nor escapes into that organisation's allowance."""
    client, upstream = limited
    for _ in range(3):
        assert _get(client, standin, "svc-e", "GQX042-A").status_code == 200
    assert _get(client, standin, "svc-a", "GQX042-A").status_code == 200
    assert _get(client, standin, "svc-b", "GQX042-A").status_code == 200
    assert _get(client, standin, "svc-a", "GQX042-A").status_code == 429
    assert len(upstream) == 5


BUNDLE_LIMITS = """
[limits.clients]
bulk = "10/minute"
"""


def _batch(entries: int) -> dict[str, object]:
    items = [
        {"request": {"method": "GET", "url": f"Patient/p{n}"}} for n in range(entries)
    ]
    return {"resourceType": "Bundle", "type": "batch", "entry": items}


def test_each_bundle_entry_is_charged(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    text = gateway_toml(standin.url, "{upstream}", tmp_path).replace(
        '[limits.clients]\nlimited = "3/minute"', BUNDLE_LIMITS.strip()
    )
    with ThreadServer(upstream_app(recorder)) as upstream:
        settings = parse_settings(text.replace("{upstream}", upstream.url), source="t")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            token = standin.token({"client_id": "bulk", "sub": "bulk", "jti": "b"})
            headers = {
                **FHIR,
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/fhir+json",
            }

            def post(entries: int) -> httpx.Response:
                return client.post("/fhir", json=_batch(entries), headers=headers)

            # 1 (write) + 5 entries = 6 of 10 units.
            assert post(5).is_success
            refused = post(5)
            assert refused.status_code == 429, refused.text
            assert refused.json()["issue"][0]["code"] == "throttled"
            assert len(recorder.requests) == 1
            # What is left still admits a small Bundle.
            assert post(1).is_success
            assert len(recorder.requests) == 2
