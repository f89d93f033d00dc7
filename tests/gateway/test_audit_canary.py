"""Canaries: a recognisable token, cookie, Request-Context, NHI and body sent
through every path, errors included, with DEBUG logging; none of them appears
in a log line, an audit event or any file the gateway writes."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ThreadServer
from tests.gateway.conftest import GatewayUnderTest, Recorder, StandIn, upstream_app
from tests.gateway.gateway_process import gateway_process

CANARY = "KANARI7431"
NHI = "ZKC7284"
FHIR = {"Accept": "application/fhir+json"}
CONTEXT = base64.b64encode(
    json.dumps(
        {
            "userIdentifier": CANARY,
            "userFullName": f"Aroha {CANARY}",
            "purposeOfUse": ["TREAT"],
            "secondaryIdentifier": {"value": NHI},
        }
    ).encode()
).decode()


def _send_canaries(client: httpx.Client, standin: StandIn) -> list[str]:
    """Every path a request can take; returns the secrets that must not leak."""
    token = standin.token({"scope": "system/*.cruds", "jti": CANARY})
    auth = {**FHIR, "Authorization": f"Bearer {token}"}
    body = json.dumps({"resourceType": "Patient", "name": [{"family": CANARY}]})
    calls = [
        (
            "GET",
            f"/fhir/Patient?family={CANARY}",
            {**FHIR, "Cookie": f"s={CANARY}"},
            None,
        ),
        (
            "GET",
            f"/fhir/Patient/{NHI}",
            {**FHIR, "Authorization": f"Bearer {CANARY}.x.y"},
            None,
        ),
        ("GET", f"/fhir/Patient/{NHI}", {**auth, "Cookie": f"s={CANARY}"}, None),
        ("GET", f"/fhir/Patient/{NHI}", {**auth, "Request-Context": CONTEXT}, None),
        ("GET", f"/fhir/Patient?identifier=x|{NHI}&family={CANARY}", auth, None),
        ("GET", f"/fhir/Patient/boom?family={CANARY}", auth, None),
        ("GET", f"/fhir/Patient/{CANARY}%0d%0aFORGED", auth, None),
        ("GET", f"/fhir/Patient?_count={CANARY}", auth, None),
        (
            "POST",
            "/fhir/Patient",
            {**auth, "Content-Type": "application/fhir+json"},
            body,
        ),
        (
            "POST",
            "/fhir/Patient",
            {**auth, "Content-Type": "application/fhir+json"},
            body[:-3],
        ),
        ("POST", "/fhir/Patient", {**auth, "Content-Type": "text/plain"}, body),
        (
            "POST",
            "/fhir/Patient",
            {**auth, "Content-Type": "application/fhir+json"},
            body + " " * 2_000_000,
        ),
        ("GET", f"/nowhere/{CANARY}", {**auth, "DPoP": f"{CANARY}.proof"}, None),
    ]
    for method, path, headers, content in calls:
        response = client.request(method, path, headers=headers, content=content)
        assert response.status_code < 500 or "boom" in path
        assert CANARY not in response.text
    # The upstream's own error page ("Traceback ... db.internal:5432") too.
    return [CANARY, NHI, token, token.split(".")[2], CONTEXT[:24], "db.internal"]


def _assert_absent(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret[:12]}... found in {where}"


@pytest.fixture
def upstream() -> Iterator[str]:
    with ThreadServer(upstream_app(Recorder())) as server:
        yield server.url


@pytest.mark.e2e
def test_canaries_leave_no_trace_in_a_real_gateway(
    standin: StandIn, upstream: str, tmp_path: Path
) -> None:
    audit = 'sink = "sqlite"\npath = "var/audit.sqlite"\n'
    with gateway_process(
        standin.url, upstream, tmp_path, audit, log_level="DEBUG"
    ) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            secrets = _send_canaries(client, standin)
        gw.stop()

    log = gw.log.read_text(errors="replace")
    assert "DEBUG" in log and "ready" in log
    _assert_absent(log, secrets, "the gateway log")
    written = [p for p in (tmp_path / "var").rglob("*") if p.is_file()]
    assert any(p.name == "audit.sqlite" for p in written)
    for path in written:
        _assert_absent(path.read_bytes().decode("latin-1"), secrets, str(path))


def test_canaries_leave_no_trace_in_logs_or_events(
    gateway: GatewayUnderTest, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        secrets = _send_canaries(gateway.client, standin)

    ours = [
        record
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    ]
    text = "\n".join(logging.Formatter("%(message)s").format(record) for record in ours)
    _assert_absent(text, secrets, "log records")
    _assert_absent(gateway.audit_path.read_text(), secrets, "audit events")
    assert len(gateway.events()) == 13
