"""HTTP framing (request smuggling shapes) against the real server: 400 and close.

Each case is sent on a raw socket to the gateway as ``kaitiaki serve`` runs it
(uvicorn with the httptools parser, llhttp). None may reach the upstream, and the server
must close the connection rather than read a second request from it. Every
HRS-* kind of ../shared/cases/attacks.md appears in several spellings.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaitiaki.gateway import listener
from kaitiaki.gateway.listener import MAX_PIPELINED
from tests.gateway.conftest import GatewayUnderTest, StandIn, raw_exchange
from tests.gateway.validation_support import running_gateway

HOST = b"Host: 127.0.0.1\r\n"
POST = b"POST /fhir/Patient HTTP/1.1\r\n" + HOST
GET = b"GET /fhir/Patient HTTP/1.1\r\n" + HOST
SMUGGLED = b"GET /fhir/Patient HTTP/1.1\r\n" + HOST + b"\r\n"
CHUNKED_EMPTY = b"\r\n0\r\n\r\n" + SMUGGLED

CASES = {
    # HRS-02: both Content-Length and Transfer-Encoding.
    "HRS-02 CL then TE": POST
    + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    + CHUNKED_EMPTY,
    "HRS-02 TE then CL": POST
    + b"Transfer-Encoding: chunked\r\nContent-Length: 60\r\n"
    + CHUNKED_EMPTY,
    "HRS-02 CL zero and TE": POST
    + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"
    + CHUNKED_EMPTY,
    "HRS-02 TE upper case and CL": POST
    + b"TRANSFER-ENCODING: CHUNKED\r\nContent-Length: 5\r\n"
    + CHUNKED_EMPTY,
    # HRS-01: conflicting, repeated or unknown transfer codings.
    "HRS-01 two TE, chunked not last": POST
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"
    + CHUNKED_EMPTY,
    "HRS-01 TE list, chunked not last": POST
    + b"Transfer-Encoding: chunked, identity\r\n"
    + CHUNKED_EMPTY,
    "HRS-01 chunked twice": POST
    + b"Transfer-Encoding: chunked, chunked\r\n"
    + CHUNKED_EMPTY,
    "HRS-01 two TE headers chunked": POST
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
    + CHUNKED_EMPTY,
    "HRS-01 gzip then chunked": POST
    + b"Transfer-Encoding: gzip, chunked\r\n"
    + CHUNKED_EMPTY,
    "HRS-01 unknown coding": POST + b"Transfer-Encoding: xchunked\r\n" + CHUNKED_EMPTY,
    "HRS-01 coding with quotes": POST
    + b'Transfer-Encoding: "chunked"\r\n'
    + CHUNKED_EMPTY,
    "HRS-01 TE with tab": POST + b"Transfer-Encoding:\tchunked\x0b\r\n" + CHUNKED_EMPTY,
    "HRS-01 space before colon": POST
    + b"Transfer-Encoding : chunked\r\n"
    + CHUNKED_EMPTY,
    "HRS-01 TE on HTTP/1.0": b"POST /fhir/Patient HTTP/1.0\r\n"
    + HOST
    + b"Transfer-Encoding: chunked\r\n"
    + CHUNKED_EMPTY,
    # Differing duplicate Content-Length.
    "CL differing duplicates": POST
    + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}"
    + SMUGGLED,
    "CL differing list": POST + b"Content-Length: 2, 40\r\n\r\n{}" + SMUGGLED,
    "CL signed": POST + b"Content-Length: +2\r\n\r\n{}" + SMUGGLED,
    "CL not a number": POST + b"Content-Length: 2x\r\n\r\n{}" + SMUGGLED,
    "CL negative": POST + b"Content-Length: -1\r\n\r\n{}" + SMUGGLED,
    # HRS-04 and malformed chunks.
    "HRS-04 chunk without CRLF": POST
    + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
    + SMUGGLED,
    "HRS-04 chunk with bare LF": POST
    + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"
    + SMUGGLED,
    "HRS-04 chunk longer than size": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunk size not hex": POST
    + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk size negative": POST
    + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "chunk size with 0x": POST
    + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "chunk size overflow": POST
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"f" * 40
    + b"\r\nhello\r\n0\r\n\r\n",
    # Bare CR or LF, obs-fold and other header-line faults.
    "bare CR in header value": GET + b"X-A: a\rb\r\n\r\n",
    "bare CR ends header line": GET + b"X-A: a\rX-B: b\r\n\r\n",
    "bare CR in request line": b"GET /fhir/Patient\r HTTP/1.1\r\n" + HOST + b"\r\n",
    "NUL in header": GET + b"X-A: a\x00b\r\n\r\n",
    # Bare LF as a line end (RFC 9112 §2.2 permits it; a proxy may not agree).
    "bare LF everywhere": b"GET /fhir/metadata HTTP/1.1\nHost: 127.0.0.1\n\n",
    "bare LF ends request line": b"GET /fhir/metadata HTTP/1.1\n" + HOST + b"\r\n",
    "bare LF ends a header": GET + b"X-A: a\nTransfer-Encoding: chunked\r\n\r\n",
    "bare LF ends the head": GET + b"X-A: a\r\n\n",
    "bare LF in a trailer": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: 1\n\r\n",
    "bare LF after chunk size": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n",
    "header without colon": GET + b"X-A a\r\n\r\n",
    "empty header name": GET + b": a\r\n\r\n",
    "obs-fold on Transfer-Encoding": POST
    + b"Transfer-Encoding: identity\r\n chunked\r\n"
    + CHUNKED_EMPTY,
    "obs-fold as first header": b"GET /fhir/Patient HTTP/1.1\r\n x: y\r\n"
    + HOST
    + b"\r\n",
    # Request-target forms other than origin-form.
    "absolute-form target": b"GET http://attacker.example/fhir/Patient HTTP/1.1\r\n"
    + HOST
    + b"\r\n",
    "absolute-form own host": b"GET http://127.0.0.1/fhir/Patient HTTP/1.1\r\n"
    + HOST
    + b"\r\n",
    "authority-form": b"CONNECT attacker.example:443 HTTP/1.1\r\n" + HOST + b"\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n",
    # Protocol versions other than HTTP/1.0 and HTTP/1.1 (llhttp takes these two).
    "HTTP/0.9 with a head": b"GET /fhir/Patient HTTP/0.9\r\n" + HOST + b"\r\n",
    "HTTP/2.0 with a head": b"GET /fhir/Patient HTTP/2.0\r\n" + HOST + b"\r\n",
    # Host.
    "two Host headers": GET + HOST + b"\r\n",
    "foreign Host": b"GET /fhir/Patient HTTP/1.1\r\nHost: attacker.example\r\n\r\n",
    "no Host on HTTP/1.1": b"GET /fhir/Patient HTTP/1.1\r\n\r\n",
    "no Host on HTTP/1.0": b"GET /fhir/Patient HTTP/1.0\r\n\r\n",
}


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    with running_gateway(Path(tmp_path_factory.mktemp("framing"))) as pair:
        yield pair


@pytest.fixture
def gateway(shared: tuple[GatewayUnderTest, StandIn]) -> GatewayUnderTest:
    shared[0].recorder.requests.clear()
    return shared[0]


@pytest.fixture
def issuer(shared: tuple[GatewayUnderTest, StandIn]) -> StandIn:
    return shared[1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_framing_faults_get_400_and_close(gateway: GatewayUnderTest, name: str) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    received = raw_exchange(port, CASES[name])
    # One reply only: the smuggled second request is never answered, and the
    # server closed the connection (recv returned end-of-stream).
    assert received.startswith(b"HTTP/1.1 400"), received[:80]
    assert received.count(b"HTTP/1.1 ") == 1
    assert gateway.recorder.requests == []


def test_obs_fold_is_refused_never_split(gateway: GatewayUnderTest) -> None:
    # llhttp refuses obs-fold (RFC 9112 §5.2 allows that or unfolding); the
    # folded line never becomes a header of its own.
    port = gateway.client.base_url.port
    assert port is not None
    payload = GET + b"X-A: a\r\n Authorization: Bearer x\r\nConnection: close\r\n\r\n"
    received = raw_exchange(port, payload)
    assert received.startswith(b"HTTP/1.1 400"), received[:80]
    assert b'error="invalid_token"' not in received
    assert gateway.recorder.requests == []


def test_head_over_the_listener_bound_gets_431_and_close(
    gateway: GatewayUnderTest,
) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    received = raw_exchange(port, GET + b"X-Big: " + b"q" * 40_000 + b"\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 431"), received[:80]
    assert b'"resourceType":"OperationOutcome"' in received
    assert b"connection: close" in received.lower()
    assert b"qqqq" not in received
    # The listener refused it: the app (which adds a correlation id) never ran.
    assert b"x-correlation-id" not in received.lower()
    assert gateway.recorder.requests == []


def test_head_sent_in_small_pieces_is_bounded_too(gateway: GatewayUnderTest) -> None:
    # Many short header lines in many writes: every piece counts.
    port = gateway.client.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(GET)
        try:
            for number in range(3000):
                sock.sendall(b"X-%d: %s\r\n" % (number, b"v" * 16))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while we were still sending
        received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 431"), received[:80]
    assert b"x-correlation-id" not in received.lower()
    assert gateway.recorder.requests == []


def test_pipelined_requests_are_each_answered(gateway: GatewayUnderTest) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    metadata = b"GET /fhir/metadata HTTP/1.1\r\n" + HOST + b"\r\n"
    last = b"GET /fhir/metadata HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
    received = raw_exchange(port, metadata + last)
    assert received.count(b"HTTP/1.1 200") == 2, received[:200]


PATIENT = b'{"resourceType":"Patient"}'
CHUNKED_POST = (
    POST
    + b"Content-Type: application/fhir+json\r\nAccept: application/fhir+json\r\n"
    + b"Transfer-Encoding: chunked\r\nConnection: close\r\n"
)


def _bearer(issuer: StandIn) -> bytes:
    token = issuer.token({"scope": "system/*.cruds"})
    return b"Authorization: Bearer " + token.encode() + b"\r\n"


def test_trailer_fields_never_become_header_fields(
    gateway: GatewayUnderTest, issuer: StandIn
) -> None:
    # RFC 9110 §6.5.1: a trailer field is not merged into the header section.
    # A credential a front proxy never saw as a header authenticates nothing.
    port = gateway.client.base_url.port
    assert port is not None
    body = b"%x\r\n%s\r\n0\r\n" % (len(PATIENT), PATIENT)
    payload = CHUNKED_POST + b"\r\n" + body + _bearer(issuer) + b"\r\n"
    received = raw_exchange(port, payload)
    assert received.startswith(b"HTTP/1.1 401"), received[:80]
    assert gateway.recorder.requests == []


def test_trailer_fields_are_not_forwarded(
    gateway: GatewayUnderTest, issuer: StandIn
) -> None:
    port = gateway.client.base_url.port
    assert port is not None
    body = b"%x\r\n%s\r\n0\r\n" % (len(PATIENT), PATIENT)
    trailers = b'If-Match: W/"1"\r\nPrefer: return=minimal\r\n\r\n'
    received = raw_exchange(
        port, CHUNKED_POST + _bearer(issuer) + b"\r\n" + body + trailers
    )
    assert received.startswith(b"HTTP/1.1 201"), received[:80]
    [forwarded] = gateway.recorder.requests
    assert "if-match" not in forwarded["headers"]
    assert "prefer" not in forwarded["headers"]


@pytest.mark.parametrize(
    "start",
    [
        GET + b"X-Big: ",
        GET + b"X-Big",
        CHUNKED_POST + b"\r\n2\r\n{}\r\n0\r\nX-Trailer: ",
        CHUNKED_POST + b"\r\n2;ext=",
    ],
    ids=["value", "name", "trailer", "chunk extension"],
)
def test_unterminated_line_sent_in_pieces_is_bounded(
    gateway: GatewayUnderTest, start: bytes
) -> None:
    # The parser holds a field line until its CRLF: without a bound on the
    # bytes that arrive without one, a single endless line fills the memory.
    port = gateway.client.base_url.port
    assert port is not None
    # A small send buffer: on loopback the kernel buffers (the server's
    # receive buffer grows to tens of MB) would otherwise take megabytes while
    # the app runs, and "sent" would measure them rather than the listener.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    with sock:
        sock.sendall(start)
        sent = 0
        try:
            while sent < 4_000_000:
                sock.sendall(b"q" * 8192)
                sent += 8192
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while we were still sending
        try:
            received = sock.recv(65536)
        except ConnectionResetError:
            received = b""
    assert sent < 4_000_000
    # The POSTs carry no token: when the app's 401 wins the race with the
    # listener's bound, that is the one reply and the connection closes.
    refusals = (b"HTTP/1.1 431", b"HTTP/1.1 400", b"HTTP/1.1 401")
    assert received == b"" or received.startswith(refusals), received[:80]
    assert received.count(b"HTTP/1.1 ") <= 1
    assert b"qqqq" not in received
    assert gateway.recorder.requests == []


METADATA = b"GET /fhir/metadata HTTP/1.1\r\n" + HOST + b"\r\n"


@pytest.mark.parametrize(
    ("second", "status"),
    [
        (GET + b"X-A: a\rb\r\n\r\n", b"400"),
        (
            b"GET http://attacker.example/fhir/Patient HTTP/1.1\r\n" + HOST + b"\r\n",
            b"400",
        ),
        (GET + b"X-Big: " + b"q" * 40_000 + b"\r\n\r\n", b"431"),
    ],
    ids=["malformed", "absolute-form", "too large"],
)
def test_refusal_of_a_pipelined_request_follows_the_reply_before_it(
    gateway: GatewayUnderTest, second: bytes, status: bytes
) -> None:
    # The refusal answers the request it is about, after the reply to the
    # request before it; it never stands in for that reply.
    port = gateway.client.base_url.port
    assert port is not None
    received = raw_exchange(port, METADATA + second)
    assert received.startswith(b"HTTP/1.1 200"), received[:80]
    assert received.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 " + status in received
    assert len(gateway.recorder.requests) == 1


def test_reply_is_never_followed_by_a_second_one(gateway: GatewayUnderTest) -> None:
    # Refused (401) before its body was read; the body then turns out
    # malformed. The request had its one reply: the connection just closes.
    port = gateway.client.base_url.port
    assert port is not None
    head = (
        POST + b"Content-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + b"\r\n2\r\n{}\r\n")
        first = sock.recv(65536)
        time.sleep(0.1)
        sock.sendall(b"zz\r\n")
        received = first
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 401"), received[:80]
    assert received.count(b"HTTP/1.1 ") == 1
    assert gateway.recorder.requests == []


@pytest.mark.parametrize(
    "head",
    [
        b"GET /fhir/metadata HTTP/1.1\r\n"
        + HOST
        + b"Connection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        b"GET /fhir/metadata HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"CONNECT /fhir/metadata HTTP/1.1\r\n" + HOST + b"\r\n",
    ],
    ids=["h2c", "websocket", "CONNECT"],
)
def test_upgrade_request_is_answered_and_the_connection_closed(
    gateway: GatewayUnderTest, head: bytes
) -> None:
    # Nothing here switches protocols, and the parser stops reading at an
    # upgrade: the reply closes the connection instead of leaving it to hang.
    port = gateway.client.base_url.port
    assert port is not None
    started = time.monotonic()
    received = raw_exchange(port, head + METADATA)
    assert time.monotonic() - started < 4
    assert received.startswith((b"HTTP/1.1 400", b"HTTP/1.1 405")), received[:80]
    assert b"connection: close" in received.lower()
    assert received.count(b"HTTP/1.1 ") == 1
    assert gateway.recorder.requests == []


def test_pipelined_requests_are_bounded(gateway: GatewayUnderTest) -> None:
    # llhttp reads every request in the bytes at hand; each waiting one is
    # held in memory, so a few hundred kilobytes would hold thousands.
    port = gateway.client.base_url.port
    assert port is not None
    count = 4 * MAX_PIPELINED
    received = raw_exchange(port, METADATA * count)
    served = received.count(b"HTTP/1.1 200")
    assert served == len(gateway.recorder.requests)
    assert MAX_PIPELINED < served < count
    assert received.count(b"HTTP/1.1 429") == 1
    assert received.rindex(b"HTTP/1.1 429") > received.rindex(b"HTTP/1.1 200")
    refusal = received[received.rindex(b"HTTP/1.1 429") :].lower()
    head = refusal.partition(b"\r\n\r\n")[0] + b"\r\n"
    assert b"\r\nretry-after: 1\r\n" in head


def _drip(sock: socket.socket, payload: bytes, pause: float) -> bytes:
    """Send ``payload`` a byte at a time, ``pause`` seconds apart, until the
    server answers or closes; returns what it sent back."""
    sock.settimeout(pause)
    for byte in payload:
        try:
            sock.sendall(bytes([byte]))
            received = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b""
        sock.settimeout(5)
        while chunk := sock.recv(65536):
            received += chunk
        return received
    raise AssertionError("the slow head was never cut off")


def test_a_head_sent_slowly_gets_408_and_close(
    gateway: GatewayUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slowloris: a byte every so often keeps a connection (and a file
    # descriptor) forever unless the head as a whole has a deadline.
    monkeypatch.setattr(listener, "HEAD_TIMEOUT_SECONDS", 1.0)
    port = gateway.client.base_url.port
    assert port is not None
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        received = _drip(sock, GET + b"X-Slow: " + b"s" * 200, 0.1)
    assert time.monotonic() - started < 4
    assert received.startswith(b"HTTP/1.1 408"), received[:80]
    assert b'"resourceType":"OperationOutcome"' in received
    assert b"connection: close" in received.lower()
    assert b"X-Slow" not in received
    assert received.count(b"HTTP/1.1 ") == 1
    assert gateway.recorder.requests == []


def test_a_connection_that_never_sends_a_head_is_closed(
    gateway: GatewayUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "HEAD_TIMEOUT_SECONDS", 1.0)
    port = gateway.client.base_url.port
    assert port is not None
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert sock.recv(65536) == b""
    assert time.monotonic() - started < 4


def test_a_slow_head_after_a_reply_gets_408_too(
    gateway: GatewayUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deadline runs again from the first byte of each later request.
    monkeypatch.setattr(listener, "HEAD_TIMEOUT_SECONDS", 1.0)
    port = gateway.client.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(METADATA)
        first = sock.recv(65536)
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:80]
        received = _drip(sock, GET + b"X-Slow: " + b"s" * 200, 0.1)
    assert received.startswith(b"HTTP/1.1 408"), received[:80]
    assert len(gateway.recorder.requests) == 1


@pytest.mark.parametrize("filler", [b"\r\n", b"\n"])
def test_empty_lines_after_a_reply_do_not_hold_the_connection(
    gateway: GatewayUnderTest, monkeypatch: pytest.MonkeyPatch, filler: bytes
) -> None:
    # llhttp skips empty lines between requests without a callback, and each
    # read ends uvicorn's keep-alive wait: the head deadline must run instead.
    monkeypatch.setattr(listener, "HEAD_TIMEOUT_SECONDS", 1.0)
    port = gateway.client.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(METADATA)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:80]
        started, closed = time.monotonic(), False
        sock.settimeout(0.3)
        while time.monotonic() - started < 8 and not closed:
            try:
                sock.sendall(filler)
                closed = sock.recv(65536) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
    assert closed
    assert time.monotonic() - started < 4
    assert len(gateway.recorder.requests) == 1


def test_a_head_within_its_deadline_is_served(
    gateway: GatewayUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "HEAD_TIMEOUT_SECONDS", 2.0)
    port = gateway.client.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(METADATA[:10])
        time.sleep(0.5)
        sock.sendall(METADATA[10:])
        received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200"), received[:80]


@pytest.mark.parametrize(
    "extra",
    [b"Expect: 100-continue\r\n", b""],
    ids=["expect 100-continue", "body not sent yet"],
)
def test_a_reply_before_the_body_arrived_closes_the_connection(
    gateway: GatewayUnderTest, extra: bytes
) -> None:
    # Refused (401) before the body was read. A client that got a final
    # status instead of 100 Continue may leave the body unsent: were the
    # connection kept, its next request would be read as that body.
    port = gateway.client.base_url.port
    assert port is not None
    head = POST + b"Content-Type: application/fhir+json\r\nContent-Length: 40\r\n"
    received, closed = b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(head + extra + b"\r\n")
        try:
            while chunk := sock.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            pass  # still open: the server waits for the 40 bytes
    assert received.startswith(b"HTTP/1.1 401"), received[:80]
    assert b"100 Continue" not in received
    assert b"connection: close" in received.lower()
    assert closed
    assert gateway.recorder.requests == []


def test_a_refusal_after_the_whole_body_keeps_the_connection(
    gateway: GatewayUnderTest,
) -> None:
    # The body had all arrived: the next request on the connection is served.
    port = gateway.client.base_url.port
    assert port is not None
    head = POST + b"Content-Type: application/fhir+json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(PATIENT)
    last = b"GET /fhir/metadata HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
    received = raw_exchange(port, head + PATIENT + last)
    assert received.startswith(b"HTTP/1.1 401"), received[:80]
    assert b"HTTP/1.1 200" in received
    assert len(gateway.recorder.requests) == 1


@pytest.fixture(scope="module")
def detecting(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    # The traffic filter only scores: a body on a DELETE is not refused by it.
    path = Path(tmp_path_factory.mktemp("detecting"))
    with running_gateway(path, "[waf]\ndetection_only = true\n") as pair:
        yield pair


@pytest.mark.parametrize(
    "body",
    [b"2\r\n{}XX0\r\n\r\n", b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}\r\n0\r\nX-T: 1\n\r\n"],
    ids=["chunk without CRLF", "chunk size not hex", "bare LF in a trailer"],
)
def test_a_request_refused_for_its_body_framing_never_reaches_the_upstream(
    detecting: tuple[GatewayUnderTest, StandIn], body: bytes
) -> None:
    # A DELETE takes no body, so the gateway did not read it: the listener's
    # 400 for the malformed chunks went to the client while the DELETE went
    # on to the upstream.
    gateway, issuer = detecting
    gateway.recorder.requests.clear()
    seen = _count_events(gateway)
    port = gateway.client.base_url.port
    assert port is not None
    head = b"DELETE /fhir/Patient/pat-A HTTP/1.1\r\n" + HOST + _bearer(issuer)
    received = raw_exchange(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert received.startswith(b"HTTP/1.1 400"), received[:80]
    assert received.count(b"HTTP/1.1 ") == 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _count_events(gateway) == seen:
        time.sleep(0.05)
    assert gateway.events()[-1]["status"] == 400
    assert gateway.recorder.requests == []


@pytest.fixture(scope="module")
def detecting_rest(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    path = Path(tmp_path_factory.mktemp("detecting-rest"))
    spec = Path(__file__).parents[1] / "rest" / "referrals.openapi.yaml"
    route = (
        f'[[rest]]\nprefix = "/api/v1"\nopenapi = "{spec}"\n'
        'upstream = "{upstream}/rest"\n'
    )
    with running_gateway(path, "[waf]\ndetection_only = true\n" + route) as pair:
        yield pair


@pytest.mark.parametrize("method", [b"GET", b"DELETE"])
def test_a_rest_request_refused_for_its_body_framing_never_reaches_the_upstream(
    detecting_rest: tuple[GatewayUnderTest, StandIn], method: bytes
) -> None:
    # The same on a REST route: a chunked body on a method that takes none
    # is read to its end before anything is forwarded.
    gateway, issuer = detecting_rest
    gateway.recorder.requests.clear()
    token = issuer.token({"scope": "referrals.read referrals.write"})
    port = gateway.client.base_url.port
    assert port is not None
    head = method + b" /api/v1/referrals/R1234 HTTP/1.1\r\n" + HOST
    head += b"Authorization: Bearer " + token.encode() + b"\r\n"
    head += b"Request-Context: eyJ4Ijoxfq\r\n"
    received = raw_exchange(port, head + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX")
    assert received.startswith(b"HTTP/1.1 400"), received[:80]
    time.sleep(0.3)
    assert gateway.recorder.requests == []


def _count_events(gateway: GatewayUnderTest) -> int:
    return len(gateway.events()) if gateway.audit_path.exists() else 0
