"""A request body that stalls is refused with 408 (`gateway.body_timeout_seconds`,
nginx's client_body_timeout) instead of holding a task and a connection, and
so is one trickled in pieces that each come in time but never all
(`gateway.body_deadline_seconds`)."""

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


def _gateway(
    standin: StandIn, recorder: Recorder, tmp_path: Path, timing: str
) -> Iterator[GatewayUnderTest]:
    with ThreadServer(upstream_app(recorder)) as upstream:
        toml = gateway_toml(standin.url, upstream.url, tmp_path).replace(
            'instance = "test-gw"', f'instance = "test-gw"\n{timing}'
        )
        settings = parse_settings(toml, source="test")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield GatewayUnderTest(client, recorder, tmp_path / "audit.jsonl")


@pytest.fixture
def gateway(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[GatewayUnderTest]:
    yield from _gateway(standin, recorder, tmp_path, "body_timeout_seconds = 1")


@pytest.fixture
def deadline_gateway(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[GatewayUnderTest]:
    timing = "body_timeout_seconds = 1\nbody_deadline_seconds = 1.5"
    yield from _gateway(standin, recorder, tmp_path, timing)


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


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_trickled_past_its_deadline_gets_408(
    deadline_gateway: GatewayUnderTest, standin: StandIn, framing: str
) -> None:
    # Each piece comes well within body_timeout_seconds, but the whole body
    # would take about 4 s: the deadline (1.5 s) cuts it off.
    gateway = deadline_gateway
    port = gateway.client.base_url.port
    assert port is not None
    pieces = [PATIENT[at : at + 4] for at in range(0, len(PATIENT), 4)]
    if framing == "length":
        head = _head(standin, b"Content-Length: %d\r\n" % len(PATIENT))
        wire = pieces
    else:
        head = _head(standin, b"Transfer-Encoding: chunked\r\n")
        wire = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces]
        wire.append(b"0\r\n\r\n")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for piece in wire:
            time.sleep(0.4)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = _read_all(sock)
    assert 1.3 < time.monotonic() - started < 6
    assert received.startswith(b"HTTP/1.1 408"), received[:80]
    assert b'"resourceType":"OperationOutcome"' in received
    assert b"female" not in received
    assert gateway.recorder.requests == []
    assert gateway.events()[-1]["refusal_code"] == "body_timeout"


def test_a_body_within_its_deadline_is_served(
    deadline_gateway: GatewayUnderTest, standin: StandIn
) -> None:
    gateway = deadline_gateway
    port = gateway.client.base_url.port
    assert port is not None
    framing = b"Content-Length: %d\r\nConnection: close\r\n" % len(PATIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head(standin, framing))
        for at in range(0, len(PATIENT), 15):
            time.sleep(0.3)  # about 0.9 s in all, within the 1.5 s deadline
            sock.sendall(PATIENT[at : at + 15])
        received = _read_all(sock)
    assert received.startswith(b"HTTP/1.1 201"), received[:80]
    [forwarded] = gateway.recorder.requests
    assert forwarded["body"] == PATIENT
