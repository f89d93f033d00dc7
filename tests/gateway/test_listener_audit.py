"""Refusals the listener makes itself (framing faults, an oversized head, a
protocol upgrade, too many pipelined requests) are requests refused at a
step too: each gets exactly one audit event, like every other refusal
(LOG-04 and the "every denial above" row of ../shared/cases/attacks.md).

A fault in a body is refused by the app, which already records it; only
refusals of a request the app never saw are recorded by the listener.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import GatewayUnderTest, StandIn, raw_exchange
from tests.gateway.validation_support import running_gateway

HOST = b"Host: 127.0.0.1\r\n"
POST = b"POST /fhir/Patient HTTP/1.1\r\n" + HOST
GET = b"GET /fhir/Patient HTTP/1.1\r\n" + HOST
SMUGGLED = b"GET /fhir/Patient HTTP/1.1\r\n" + HOST + b"\r\n"

# (request bytes, status, refusal code)
CASES = {
    "HRS-02 CL and TE": (
        POST
        + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + SMUGGLED,
        400,
        "framing",
    ),
    "HRS-01 two TE, chunked not last": (
        POST
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
        + b"0\r\n\r\n",
        400,
        "framing",
    ),
    "bare CR in a header": (GET + b"X-A: a\rb\r\n\r\n", 400, "framing"),
    "absolute-form target": (
        b"GET http://attacker.example/fhir/Patient HTTP/1.1\r\n" + HOST + b"\r\n",
        400,
        "framing",
    ),
    "protocol upgrade": (
        GET + b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        400,
        "framing",
    ),
    "JWT-15 oversized head": (
        GET + b"Authorization: Bearer " + b"q" * 40_000 + b"\r\n\r\n",
        431,
        "headers_too_large",
    ),
}


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    with running_gateway(Path(tmp_path_factory.mktemp("listener-audit"))) as pair:
        yield pair


def _new_events(
    gateway: GatewayUnderTest, before: int, wanted: int
) -> list[dict[str, Any]]:
    # The listener's record is written beside its reply: wait for it briefly.
    deadline = time.monotonic() + 5
    while True:
        found = gateway.events()[before:]
        if len(found) >= wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("name", sorted(CASES))
def test_listener_refusal_has_one_audit_event(
    shared: tuple[GatewayUnderTest, StandIn], name: str
) -> None:
    gateway = shared[0]
    payload, status, code = CASES[name]
    port = gateway.client.base_url.port
    assert port is not None
    before = len(gateway.events())
    received = raw_exchange(port, payload, may_close_early=True)
    assert received.startswith(b"HTTP/1.1 %d" % status), received[:80]
    time.sleep(0.2)  # a second (wrong) event would come as soon as the first
    events = _new_events(gateway, before, 1)
    assert len(events) == 1, events
    event = events[0]
    assert event["status"] == status
    assert event["outcome"] == "refused"
    assert event["refusal_step"] == "listener"
    assert event["refusal_code"] == code
    assert event["client_address"] == "127.0.0.1"
    assert event["correlation_id"]
    # Nothing of the request is in the record.
    text = repr(event)
    assert "attacker" not in text
    assert "qqqq" not in text
    assert gateway.recorder.requests == []


def test_body_fault_is_recorded_once_by_the_app(
    shared: tuple[GatewayUnderTest, StandIn],
) -> None:
    # HRS-04: the head was whole, so the app saw the request and records it;
    # the listener must not add a second event.
    gateway = shared[0]
    port = gateway.client.base_url.port
    assert port is not None
    before = len(gateway.events())
    received = raw_exchange(
        port,
        POST
        + b"Content-Type: application/fhir+json\r\n"
        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        may_close_early=True,
    )
    assert received.startswith(b"HTTP/1.1 4"), received[:80]
    time.sleep(0.3)
    events = _new_events(gateway, before, 1)
    assert len(events) == 1, events
    assert events[0]["refusal_step"] != "listener"
