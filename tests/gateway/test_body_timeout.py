"""A request body that stalls is refused with 408 (`gateway.body_timeout_seconds`,
nginx's client_body_timeout) instead of holding a task and a connection."""

from __future__ import annotations

import socket
import time
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
    upstream_app,
)

PATIENT = b'{"resourceType":"Patient","gender":"female"}'


@pytest.fixture
def gateway(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[GatewayUnderTest]:
    with ThreadServer(upstream_app(recorder)) as upstream:
        toml = gateway_toml(standin.url, upstream.url, tmp_path).replace(
            'instance = "test-gw"', 'instance = "test-gw"\nbody_timeout_seconds = 1'
        )
        settings = parse_settings(toml, source="test")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield GatewayUnderTest(client, recorder, tmp_path / "audit.jsonl")


def _head(standin: StandIn, framing: bytes) -> bytes:
    return (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/fhir+json\r\nAccept: application/fhir+json\r\n"
        + b"Authorization: Bearer "
        + standin.token({"scope": "system/*.cruds"}).encode()
        + b"\r\n"
        + framing
        + b"\r\n"
    )


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize(
    ("framing", "sent"),
    [
        (b"Content-Length: %d\r\n" % len(PATIENT), PATIENT[:10]),
        (b"Content-Length: %d\r\n" % len(PATIENT), b""),
        (b"Transfer-Encoding: chunked\r\n", b"a\r\n" + PATIENT[:10] + b"\r\n"),
        (b"Transfer-Encoding: chunked\r\n", b"%x\r\n" % len(PATIENT) + PATIENT[:5]),
    ],
    ids=["length, part sent", "length, none sent", "chunked, a chunk", "mid-chunk"],
)
def test_a_stalled_body_gets_408_and_nothing_is_forwarded(
    gateway: GatewayUnderTest, standin: StandIn, framing: bytes, sent: bytes
) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head(standin, framing) + sent)
        received = _read_all(sock)  # the gateway closes after its refusal
    assert 0.9 < time.monotonic() - started < 6
    assert received.startswith(b"HTTP/1.1 408"), received[:80]
    assert b'"resourceType":"OperationOutcome"' in received
    assert b"connection: close" in received.lower()
    assert b"female" not in received
    assert gateway.recorder.requests == []
    assert gateway.events()[-1]["refusal_code"] == "body_timeout"


def test_a_body_arriving_in_slow_pieces_within_the_timeout_is_served(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    framing = b"Content-Length: %d\r\nConnection: close\r\n" % len(PATIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head(standin, framing))
        for at in range(0, len(PATIENT), 15):
            time.sleep(0.4)  # the whole body takes longer than the timeout
            sock.sendall(PATIENT[at : at + 15])
        received = _read_all(sock)
    assert received.startswith(b"HTTP/1.1 201"), received[:80]
    [forwarded] = gateway.recorder.requests
    assert forwarded["body"] == PATIENT
