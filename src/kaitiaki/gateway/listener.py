"""The HTTP/1.1 protocol of every Kaitiaki listener: uvicorn's httptools
protocol (llhttp, Node.js's parser), bounded and refusing in our own words.

llhttp in its strict default refuses by itself every framing fault that
``tests/gateway/test_framing.py`` sends (request smuggling shapes): a lone CR
or LF as a line end, obs-fold, Transfer-Encoding beside Content-Length,
codings after ``chunked``, malformed chunk sizes, duplicate Content-Length.
What it lacks, this protocol adds:

- only origin-form request targets (a path): uvicorn reduces an
  absolute-form target to its path, hiding the host it named;
- HTTP/1.0 and HTTP/1.1 only: llhttp also takes ``HTTP/0.9`` and
  ``HTTP/2.0`` on a request line with header fields, which a front proxy may
  read as another protocol (an HTTP/0.9 reply has no head);
- no protocol switch: a request llhttp marks as an upgrade (``Upgrade``
  named in ``Connection``: h2c, websocket) or a CONNECT is refused with 400
  and the connection closed. llhttp stops reading at an upgrade, and a front
  proxy that takes the request for a tunnel would pass on bytes it never read
  as HTTP;
- a bound on the message head: llhttp has none, and httptools collects a
  header line of any size until its CRLF. A head over ``max_head_bytes`` is
  refused with 431 and the connection closed, before anything reaches the
  app (the gateway's own, configurable ``max_uri_bytes``/``max_header_bytes``
  checks then run on what is left). The request line and every complete
  field line are counted in the parser callbacks; what no callback shows (a
  field line still without its CRLF) is counted per read, from the last LF
  of the read or, for a read no callback saw, all of it;
- trailer fields are neither header fields nor forwarded (RFC 9110 §6.5.1):
  uvicorn would append them to the scope's headers while the app runs. They
  are dropped, and with chunk extensions (which llhttp skips unseen) bounded
  like the head: over the bound, 400 and close;
- a deadline on the message head (slowloris): uvicorn bounds only the idle
  time after a reply. A connection that has sent no complete head within
  ``head_timeout`` seconds (``gateway.head_timeout_seconds``, nginx's
  client_header_timeout; ``HEAD_TIMEOUT_SECONDS`` unless set) of opening, or
  of the first byte of a request, is closed: with 408 when part of a head
  arrived, silently when nothing did;
- at most ``MAX_PIPELINED`` requests waiting behind the one being answered:
  llhttp reads every request in the bytes at hand, and each waiting one is
  held in memory. The next one is refused with 429 (``Retry-After: 1``: the
  client may send it again once the replies before it have come) and the
  connection closed;
- one reply per request, in order: a refusal of a pipelined request is
  written after the replies to the requests before it, and a request that
  has (begun) its reply gets no second one when the rest of its body turns
  out malformed; the connection is just closed;
- a reply sent before the request's body has all arrived (a refusal
  before the body is read, an ``Expect: 100-continue`` refused before
  ``100 Continue``) says ``Connection: close`` and the connection is closed
  after it: a client that then leaves the body unsent would otherwise have
  its next request read as that body, and one that trickles the body holds
  the connection for ever;
- a refusal body that is an OperationOutcome naming nothing of the input,
  with the hardening headers and ``Connection: close``;
- one audit event for each request it refuses before the app saw it (a
  framing fault in the head, a head over the bound or past its deadline, an
  upgrade, too many pipelined requests): the app's ``listener_refused``, when
  it has one, records it (refusal step ``listener``). A fault in a body is
  the app's to record: it reads a disconnect and answers for the request;
- the ASGI TLS extension: uvicorn leaves it empty, so a certificate-bound
  token (RFC 8705) could only be checked behind a proxy that forwards the
  certificate. On a TLS listener that verified a client certificate
  (``gateway.tls_client_ca``), ``scope["extensions"]["tls"]["client_cert_chain"]``
  holds the leaf (PEM); without a verified certificate the extension is left
  out and nothing from the request can stand in for it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from kaitiaki.errors import (
    BadRequest,
    HeadersTooLarge,
    RateLimited,
    Refusal,
    RequestTimeout,
)
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.gateway.responses import FHIR_JSON, security_headers

__all__ = [
    "DEFAULT_MAX_HEAD_BYTES",
    "HEAD_TIMEOUT_SECONDS",
    "MAX_PIPELINED",
    "ListenerProtocol",
]

DEFAULT_MAX_HEAD_BYTES = 32768
# Seconds from a connection's opening, or from a request's first byte, to
# the end of its head.
HEAD_TIMEOUT_SECONDS = 10.0
# Requests parsed and waiting behind the one being answered, per connection.
MAX_PIPELINED = 16

# Where the parser is in the current message.
_IDLE = 0  # between messages
_HEAD = 1  # request line and header fields
_BODY = 2  # body, chunk framing and trailer fields


logger = logging.getLogger("kaitiaki.gateway.listener")

# What the app is given to record a refusal the listener made: the refusal,
# the client address and the request method ("-" when the request line was
# not read whole).
ListenerRefused = Callable[[Refusal, str, str], Coroutine[Any, Any, None]]

# Each refusal the listener sends, by its bytes, for its audit event.
_REFUSALS: dict[bytes, Refusal] = {}
# Audit writes in flight (the loop keeps only weak references to tasks).
_RECORDING: set[asyncio.Task[None]] = set()


def _refusal_bytes(refusal: Refusal, *, retry_after: int | None = None) -> bytes:
    body = refusal_outcome(refusal)
    head = [
        ("content-type", FHIR_JSON),
        ("content-length", str(len(body))),
        ("connection", "close"),
        *security_headers(cacheable=False),
    ]
    if retry_after is not None:
        head.append(("retry-after", str(retry_after)))
    lines = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in head)
    response = STATUS_LINE[refusal.status] + lines + b"\r\n" + body
    _REFUSALS[response] = refusal
    return response


_MALFORMED = _refusal_bytes(
    BadRequest("The request is not well-formed HTTP/1.1.", detail="framing")
)
_TOO_LARGE = _refusal_bytes(
    HeadersTooLarge(
        "The request line and header fields are too large.",
        detail="headers_too_large",
    )
)
_BODY_FRAMING_TOO_LARGE = _refusal_bytes(
    BadRequest(
        "The chunk extensions or trailer fields of the request are too large.",
        detail="framing",
    )
)
_UPGRADE = _refusal_bytes(
    BadRequest(
        "Protocol upgrades and CONNECT are not supported here.",
        detail="framing",
    )
)
_HEAD_TIMEOUT = _refusal_bytes(
    RequestTimeout("The request line and header fields did not arrive in time.")
)
_TOO_MANY = _refusal_bytes(
    RateLimited("Too many pipelined requests are waiting on this connection."),
    retry_after=1,
)


class _Refused(Exception):
    """Raised in a parser callback to stop llhttp; ``response`` is the
    refusal :meth:`ListenerProtocol.data_received` then sends."""

    def __init__(self, response: bytes) -> None:
        super().__init__()
        self.response = response


def _verified_peer(transport: asyncio.BaseTransport) -> str | None:
    """The PEM of the client certificate the TLS handshake verified, if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else None


class ListenerProtocol(HttpToolsProtocol):
    """httptools with a bounded head, our refusals and the TLS extension.

    The bound is uvicorn's own setting for it, ``h11_max_incomplete_event_size``
    (named for the h11 parser, where it bounds the same thing), so that it
    travels with the server settings into worker processes. The head deadline
    is bound to the class with :func:`functools.partial`
    (:func:`kaitiaki.iam.listeners.server_config`), which pickles as well.
    """

    def __init__(
        self, *args: Any, head_timeout: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        configured = self.config.h11_max_incomplete_event_size
        self.max_head_bytes = configured or DEFAULT_MAX_HEAD_BYTES
        self.head_timeout = head_timeout or HEAD_TIMEOUT_SECONDS
        self._phase = _IDLE
        # Bytes of the head (or of the trailer section) callbacks have shown,
        # and bytes no callback has shown yet (a field line without its CRLF,
        # a chunk extension).
        self._head_bytes = 0
        self._unseen = 0
        # Per read: no callback ran; a message ended.
        self._quiet = True
        self._ended = False
        # Once refusing, nothing more is parsed; a refusal that must wait for
        # the replies to the requests before it is kept here.
        self._refusing = False
        self._pending: bytes | None = None
        self._peer_pem: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        inner = self.app
        self._on_refused: ListenerRefused | None = getattr(
            inner, "listener_refused", None
        )

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            if self._peer_pem is not None and scope.get("type") == "http":
                tls = {"client_cert_chain": [self._peer_pem], "server_cert": None}
                scope = {**scope, "extensions": {**scope.get("extensions", {})}}
                scope["extensions"]["tls"] = tls
            cycle = getattr(send, "__self__", None)
            if cycle is None:
                await inner(scope, receive, send)
                return

            async def closing_early(message: Any) -> None:
                if message["type"] == "http.response.start" and cycle.more_body:
                    # Answered before its body arrived: close after the reply.
                    cycle.keep_alive = False
                await send(message)

            await inner(scope, receive, closing_early)

        self.app = with_tls

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer_pem = _verified_peer(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.head_timeout, self._head_timed_out
            )

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refusing or self.transport.is_closing():
            return
        if self._phase == _HEAD:
            self._refuse(_HEAD_TIMEOUT)
        elif self._phase == _IDLE and self._between_requests():
            # Opened and never used, or only empty lines since the last
            # reply: closed as uvicorn closes an idle one.
            self._refusing = True
            self.transport.close()

    def _between_requests(self) -> bool:
        """No request being answered or waiting (uvicorn keeps the last
        cycle after its reply)."""
        cycle = self.cycle
        return (cycle is None or cycle.response_complete) and not self.pipeline

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            self.flow.pause_reading()
            return
        self._unset_keepalive_if_required()
        self._quiet = True
        self._ended = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # on_headers_complete refuses every upgrade before llhttp stops
            # for it; should one get through, it is refused all the same.
            self._refuse(_UPGRADE)
            return
        except httptools.HttpParserError as error:
            cause = error.__context__
            self._refuse(cause.response if isinstance(cause, _Refused) else _MALFORMED)
            return
        if self._quiet:
            # No callback: every byte went to what none shows yet.
            self._unseen += len(data)
        elif self._phase != _HEAD or self._ended:
            # In a body, the bytes after the last callback may be body data;
            # after a message ended here, the last LF may be one of its own.
            self._unseen = 0
        else:
            # A field line without its CRLF starts after the last LF.
            self._unseen = len(data) - data.rfind(b"\n") - 1
        if self._head_bytes + self._unseen > self.max_head_bytes:
            too_large = _BODY_FRAMING_TOO_LARGE if self._phase == _BODY else _TOO_LARGE
            self._refuse(too_large)
            return
        if self._phase == _IDLE and self._between_requests():
            # Bytes that began no request (empty lines, which llhttp skips)
            # ended uvicorn's keep-alive wait above: the head deadline runs
            # from them instead, or a trickle of CRLFs would hold the
            # connection for ever.
            self._arm_head_timer()

    def _refuse(self, response: bytes) -> None:
        """Answer the request being parsed with ``response`` (once, in its
        turn) and close the connection; parse nothing more."""
        self._refusing = True
        self.flow.pause_reading()
        transport = self.transport
        if transport.is_closing():
            return
        if self._phase != _BODY:
            # The app never saw this request: its audit event is ours to ask for.
            self._record(response)
        if self._phase == _BODY:
            owner = self.cycle
            if owner.response_started:
                # The request has its reply: no second one. A reply still
                # being written is cut short, as by a lost connection.
                if not owner.response_complete:
                    owner.disconnected = True
                    owner.message_event.set()
                transport.close()
                return
            # The refusal is its reply: the app's, if it ever sends one, is
            # dropped, and it reads a disconnect instead of the body.
            owner.disconnected = True
            owner.message_event.set()
            waiting = next((item for item in self.pipeline if item[0] is owner), None)
            if waiting is None:
                transport.write(response)
                transport.close()
                return
            self.pipeline.remove(waiting)
        else:
            previous = self.cycle
            if previous is None or previous.response_complete:
                transport.write(response)
                transport.close()
                return
        # Requests before it are still being answered: the refusal follows them.
        self._pending = response

    def _record(self, response: bytes) -> None:
        refusal = _REFUSALS.get(response)
        if self._on_refused is None or refusal is None:
            return
        client = self.client[0] if self.client else "unknown"
        method = "-"
        if self._phase == _HEAD and self.url:
            # A URL was read, so the method before it was too.
            method = self.parser.get_method().decode("ascii", "replace")
        task: asyncio.Task[None] = self.loop.create_task(
            self._on_refused(refusal, client, method)
        )
        _RECORDING.add(task)
        task.add_done_callback(_recorded)

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)
        super().on_response_complete()
        if self._refusing:
            self.flow.pause_reading()
            if self._pending is not None and not waiting:
                if not self.transport.is_closing():
                    self._unset_keepalive_if_required()
                    self.transport.write(self._pending)
                    self.transport.close()
                self._pending = None

    def on_message_begin(self) -> None:
        # The deadline of a connection's first head runs from its opening.
        self._arm_head_timer()
        self._phase = _HEAD
        self._head_bytes = 0
        self._unseen = 0
        self._quiet = False
        super().on_message_begin()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            if self._phase == _BODY:
                raise _Refused(_BODY_FRAMING_TOO_LARGE)
            raise _Refused(_TOO_LARGE)

    def on_url(self, url: bytes) -> None:
        self._quiet = False
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # httptools calls this once per field line, when the next one starts;
        # count the line's ": " and CRLF too.
        self._quiet = False
        self._count(len(name) + len(value) + 4)
        if self._phase == _HEAD:
            super().on_header(name, value)
        # else a trailer field: counted, never a header field, never forwarded.

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        # Only origin-form ("/path?query"): uvicorn would reduce an
        # absolute-form target to its path, hiding the host it named, and an
        # authority-form (CONNECT) or asterisk-form target has no path.
        if not self.url.startswith(b"/"):
            raise _Refused(_MALFORMED)
        if self.parser.get_http_version() not in ("1.1", "1.0"):
            raise _Refused(_MALFORMED)
        if self.parser.should_upgrade():
            raise _Refused(_UPGRADE)
        if len(self.pipeline) >= MAX_PIPELINED:
            raise _Refused(_TOO_MANY)
        self._phase = _BODY
        self._head_bytes = 0
        self._unseen = 0
        self._quiet = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._quiet = False
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._head_bytes = 0
        self._unseen = 0
        self._quiet = False
        self._ended = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(_MALFORMED)


def _recorded(task: asyncio.Task[None]) -> None:
    _RECORDING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("a listener refusal could not be recorded: %r", task.exception())
