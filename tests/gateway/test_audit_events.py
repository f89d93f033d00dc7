"""Exactly one audit event per request, with the right fields, for every way a
request ends; the correlation id rule; metrics on their own listener."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kaitiaki.audit import load_audit_keys, open_sink
from kaitiaki.audit.commands import verify_sink
from kaitiaki.audit.keys import rotate_checkpoint_key
from kaitiaki.gateway.app import Gateway
from kaitiaki.gateway.auditing import GatewayAudit
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import (
    GatewayUnderTest,
    Recorder,
    StandIn,
    gateway_toml,
    upstream_app,
)

FHIR = {"Accept": "application/fhir+json"}
JSON_BODY = {"Content-Type": "application/fhir+json"}


def bearer(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}


def _only_event(gateway: GatewayUnderTest, correlation_id: str) -> dict[str, Any]:
    found = [e for e in gateway.events() if e["correlation_id"] == correlation_id]
    assert len(found) == 1, found
    return found[0]


def _send(gateway: GatewayUnderTest, standin: StandIn, case: str) -> httpx.Response:
    token = standin.token({"scope": "system/*.cruds"})
    client = gateway.client
    if case == "401":
        return client.get("/fhir/Patient", headers=FHIR)
    if case == "403":
        narrow = standin.token({"scope": "system/Observation.rs"})
        return client.get("/fhir/Patient", headers=bearer(narrow))
    if case == "400":
        return client.get("/fhir/Patient?_count=abc", headers=bearer(token))
    if case == "413":
        return client.post(
            "/fhir/Patient",
            headers={**bearer(token), **JSON_BODY},
            content=b"x" * 2_000_000,
        )
    if case == "415":
        return client.post(
            "/fhir/Patient",
            headers={**bearer(token), "Content-Type": "text/plain"},
            content=b"{}",
        )
    if case == "429":
        limited = standin.token({"client_id": "limited", "sub": "limited"})
        for _ in range(3):
            client.get("/fhir/Patient", headers=bearer(limited))
        return client.get("/fhir/Patient", headers=bearer(limited))
    if case == "5xx":
        return client.get("/fhir/Patient/boom", headers=bearer(token))
    if case == "read":
        return client.get("/fhir/Patient/ZZZ0016", headers=bearer(token))
    return client.post(
        "/fhir/Patient",
        headers={**bearer(token), **JSON_BODY},
        content=b'{"resourceType":"Patient"}',
    )


CASES = [
    # case, status, outcome, refusal step, refusal code, route, interaction
    ("401", 401, "refused", "authenticate", "no_token", "/fhir/{type}", "search-type"),
    ("403", 403, "refused", "authorise", "scope_type", "/fhir/{type}", "search-type"),
    ("400", 400, "refused", "validate", None, "/fhir/{type}", "search-type"),
    ("413", 413, "refused", "validate", "payload_too_large", "/fhir/{type}", "create"),
    ("415", 415, "refused", "validate", None, "/fhir/{type}", "create"),
    ("429", 429, "refused", "throttle", "rate_client", "/fhir/{type}", "search-type"),
    ("5xx", 503, "failed", "upstream", "upstream_error", "/fhir/{type}/{id}", "read"),
    ("read", 200, "served", None, None, "/fhir/{type}/{id}", "read"),
    ("write", 201, "served", None, None, "/fhir/{type}", "create"),
]


@pytest.mark.parametrize(
    ("case", "status", "outcome", "step", "code", "route", "interaction"), CASES
)
def test_audit_one_event_per_request_kind(
    gateway: GatewayUnderTest,
    standin: StandIn,
    case: str,
    status: int,
    outcome: str,
    step: str | None,
    code: str | None,
    route: str,
    interaction: str,
) -> None:
    response = _send(gateway, standin, case)
    assert response.status_code == status

    event = _only_event(gateway, response.headers["x-correlation-id"])

    assert (event["status"], event["outcome"], event["refusal_step"]) == (
        status,
        outcome,
        step,
    )
    if code is not None:
        assert event["refusal_code"] == code
    else:
        assert (event["refusal_code"] is None) == (step is None)
    assert (event["route"], event["interaction"]) == (route, interaction)
    assert event["instance"] == "test-gw" and event["method"] == response.request.method
    assert event["client_address"] == "127.0.0.1" and event["latency_ms"] > 0
    assert event["bytes_out"] == len(response.content)
    if case not in ("401",):
        assert event["client_id"] in ("svc", "limited")
    if case == "write":
        assert event["bytes_in"] == len(b'{"resourceType":"Patient"}')
    if case in ("read", "write", "5xx", "400", "413", "415"):
        assert event["scope"] == "system/*.cruds"
        assert event["token_id"] and event["token_id"] != "j1"
    if step not in (None, "upstream"):
        sent = gateway.recorder.requests
        assert all(
            r["headers"]["x-correlation-id"] != event["correlation_id"] for r in sent
        )


def test_audit_read_event_carries_the_hashed_patient(
    gateway: GatewayUnderTest, standin: StandIn, tmp_path: Path
) -> None:
    token = standin.token()
    read = gateway.client.get("/fhir/Patient/ZZZ0016", headers=bearer(token))
    search = gateway.client.get(
        "/fhir/Observation?patient=Patient/ZZZ0016&_count=5", headers=bearer(token)
    )

    settings = parse_settings(
        gateway_toml("http://i", "http://u", tmp_path), source="t"
    )
    expected = load_audit_keys(settings.audit).pseudonymiser.patient("ZZZ0016")
    first = _only_event(gateway, read.headers["x-correlation-id"])
    second = _only_event(gateway, search.headers["x-correlation-id"])
    assert first["patient"] == second["patient"] == expected
    assert second["query"].startswith("patient=h:") and second["query"].endswith(
        "_count=5"
    )
    assert "ZZZ0016" not in gateway.audit_path.read_text()


@pytest.mark.parametrize(
    ("header", "value", "kept"),
    [
        ("X-Correlation-Id", "abc-1", True),
        ("Correlation-Id", "trace.42_a", True),
        ("X-Correlation-Id", "x" * 65, False),
        ("X-Correlation-Id", "a b", False),
        ("X-Correlation-Id", "req-ZZZ0016", False),
    ],
)
def test_correlation_id_is_kept_only_when_safe(
    gateway: GatewayUnderTest, standin: StandIn, header: str, value: str, kept: bool
) -> None:
    response = gateway.client.get(
        "/fhir/Patient", headers={**bearer(standin.token()), header: value}
    )

    echoed = response.headers["x-correlation-id"]
    assert (echoed == value) is kept
    assert gateway.recorder.requests[0]["headers"]["x-correlation-id"] == echoed
    assert _only_event(gateway, echoed)["status"] == 200


def test_security_events_at_startup(gateway: GatewayUnderTest) -> None:
    actions = [r["action"] for r in gateway.records() if r["event_type"] == "security"]
    assert actions[:2] == ["key_created", "key_created"]
    assert "config_loaded" in actions and "gateway_started" in actions


@pytest.fixture
def gateway_with(standin: StandIn, recorder: Recorder, tmp_path: Path) -> Iterator[Any]:
    """A gateway factory taking extra TOML."""
    servers: list[Any] = []

    def start(extra: str) -> tuple[httpx.Client, Gateway]:
        upstream = ThreadServer(upstream_app(recorder)).__enter__()
        settings = parse_settings(
            gateway_toml(standin.url, upstream.url, tmp_path, extra), source="test"
        )
        app = Gateway(settings)
        server = ThreadServer(app).__enter__()
        client = httpx.Client(base_url=server.url, timeout=10)
        servers.extend([client, server, upstream])
        return client, app

    yield start
    for item in servers:
        if isinstance(item, httpx.Client):
            item.close()
        else:
            item.__exit__(None, None, None)


def test_sink_down_refuses_with_503_and_upstream_sees_nothing(
    gateway_with: Any, standin: StandIn, recorder: Recorder
) -> None:
    client, app = gateway_with("")
    app.audit.recorder.sink.close()

    response = client.get("/fhir/Patient", headers=bearer(standin.token()))
    again = client.post(
        "/fhir/Patient",
        headers={**bearer(standin.token({"scope": "system/*.c"})), **JSON_BODY},
        content=b'{"resourceType":"Patient"}',
    )

    assert response.status_code == again.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    # The first was forwarded and its reply withheld; once the sink is known
    # to fail, nothing more reaches the upstream.
    assert len(recorder.requests) == 1
    assert app.audit.metrics.sink_up._value.get() == 0

    app.audit.recorder.sink = open_sink(app.settings.audit)  # the sink is back
    statuses = [
        client.get("/fhir/Patient", headers=bearer(standin.token())).status_code
        for _ in range(2)
    ]
    assert statuses == [503, 200]  # the first one's record proves it works again
    assert app.audit.metrics.sink_up._value.get() == 1
    lines = Path(app.settings.audit.path).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    requests = [r for r in records if r["event_type"] == "request"]
    assert [(r["status"], r["refusal_step"]) for r in requests] == [
        (503, "audit"),
        (200, None),
    ]
    assert "sink_recovered" in [r["action"] for r in records]


def test_named_degraded_mode_serves_unaudited(
    gateway_with: Any, standin: StandIn
) -> None:
    client, app = gateway_with('degraded_mode = "serve_unaudited"')
    app.audit.recorder.sink.close()

    response = client.get("/fhir/Patient", headers=bearer(standin.token()))

    assert response.status_code == 200
    served = app.audit.metrics.unaudited.labels("served")._value.get()
    assert served == 1


def test_metrics_listener_is_separate_and_counts_refusals(
    gateway_with: Any, standin: StandIn
) -> None:
    client, app = gateway_with("[metrics]\nenabled = true\nport = 0")
    client.get("/fhir/Patient", headers=FHIR)
    client.get("/fhir/Patient", headers=bearer(standin.token()))

    text = httpx.get(f"http://127.0.0.1:{app.audit.listener.port}/metrics").text

    assert (
        'kaitiaki_requests_total{outcome="refused",refusal_code="no_token",'
        'refusal_step="authenticate",status="401"} 1.0'
    ) in text
    assert "kaitiaki_request_duration_seconds_bucket" in text
    assert "kaitiaki_audit_sink_up 1.0" in text
    assert client.get("/metrics").status_code == 404
    assert client.get("/fhir/metrics", headers=FHIR).status_code in (401, 404)


def test_jwks_fetch_failure_is_a_security_event(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    dead_issuer = f"http://127.0.0.1:{free_port()}"
    with ThreadServer(upstream_app(recorder)) as upstream:
        settings = parse_settings(
            gateway_toml(dead_issuer, upstream.url, tmp_path), source="test"
        )
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            response = client.get("/fhir/Patient", headers=bearer(standin.token()))
        records = GatewayUnderTest(client, recorder, tmp_path / "audit.jsonl").records()

    assert response.status_code == 503 and recorder.requests == []
    failures = [r for r in records if r["action"] == "jwks_fetch_failed"]
    assert len(failures) == 1 and failures[0]["outcome"] == "failure"
    assert failures[0]["detail"] == "ClientConnectorError"


def test_restarts_record_key_rotation_and_config_changes(tmp_path: Path) -> None:
    toml = gateway_toml("http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path)
    settings = parse_settings(toml, source="test")

    GatewayAudit(settings).close()
    rotate_checkpoint_key(settings.audit)
    GatewayAudit(settings).close()
    changed = settings.model_copy(
        update={"validation": settings.validation.model_copy(update={"max_count": 7})}
    )
    GatewayAudit(changed).close()

    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    actions = [json.loads(x)["action"] for x in lines if '"security"' in x]
    assert actions.count("key_rotated") == 1
    assert actions.count("config_changed") == 1
    (report,) = verify_sink(settings.audit, [])
    assert report.ok and report.checkpoints == 3
