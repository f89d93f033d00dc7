"""HTTP framing (request smuggling shapes) against the real server: 400 and close.

Each case is sent on a raw socket to the gateway as ``kaitiaki serve`` runs it
(uvicorn with the h11 parser). None may reach the upstream, and the server
must close the connection rather than read a second request from it.
"""

from __future__ import annotations

import socket

import pytest

from tests.gateway.conftest import GatewayUnderTest

SMUGGLED = b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

CASES = {
    "HRS-02 CL and TE": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "HRS-02 TE and CL": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 60\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "HRS-01 two TE, chunked not last": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "HRS-01 TE list chunked not last": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "HRS-01 unknown coding": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: xchunked\r\n"
        b"\r\n0\r\n\r\n" + SMUGGLED
    ),
    "differing duplicate CL": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
        b"Content-Length: 40\r\n\r\n{}" + SMUGGLED
    ),
    "HRS-04 chunk without CRLF": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n5\r\nhelloXX0\r\n\r\n" + SMUGGLED
    ),
    "bad chunk size": (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
    "space before colon": (
        b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding : chunked\r\n\r\n"
    ),
    "bare CR in header": (
        b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n"
    ),
    "absolute-form target": (
        b"GET http://attacker.example/fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    ),
    "NUL in header": (b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n"),
}


def _exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    return received


@pytest.mark.parametrize("name", sorted(CASES))
def test_framing_faults_get_400_and_close(gateway: GatewayUnderTest, name: str) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    received = _exchange(port, CASES[name])
    # One reply only: the smuggled second request is never answered.
    assert received.startswith(b"HTTP/1.1 400"), received[:80]
    assert received.count(b"HTTP/1.1 ") == 1
    assert gateway.recorder.requests == []


def test_obs_fold_is_unfolded_never_split(gateway: GatewayUnderTest) -> None:
    # h11 replaces obs-fold with a space (the alternative RFC 9112 §5.2
    # allows); the folded line can never become a header of its own.
    port = gateway.client.base_url.port
    assert port is not None
    payload = (
        b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n"
        b" Authorization: Bearer x\r\n\r\n"
    )
    received = _exchange(port, payload + b"")
    assert received.startswith(b"HTTP/1.1 401"), received[:80]
    assert b'error="invalid_token"' not in received
    assert gateway.recorder.requests == []
