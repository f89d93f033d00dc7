"""The HTTP/1.1 protocol of every Kaitiaki listener: uvicorn's httptools
protocol (llhttp, Node.js's parser), bounded and refusing in our own words.

llhttp in its strict default refuses by itself every framing fault that
``tests/gateway/test_framing.py`` sends (request smuggling shapes): a lone CR
or LF as a line end, obs-fold, Transfer-Encoding beside Content-Length,
codings after ``chunked``, malformed chunk sizes, duplicate Content-Length.
What it lacks, this protocol adds:

- only origin-form request targets (a path): uvicorn reduces an
  absolute-form target to its path, hiding the host it named;
- a bound on the message head: llhttp has none, and uvicorn would collect a
  request line and header fields of any size. A head over ``max_head_bytes``
  is refused with 431 and the connection closed, before anything reaches the
  app (the gateway's own, configurable ``max_uri_bytes``/``max_header_bytes``
  checks then run on what is left);
- a refusal body that is an OperationOutcome naming nothing of the input,
  with the hardening headers and ``Connection: close``;
- the ASGI TLS extension: uvicorn leaves it empty, so a certificate-bound
  token (RFC 8705) could only be checked behind a proxy that forwards the
  certificate. On a TLS listener that verified a client certificate
  (``gateway.tls_client_ca``), ``scope["extensions"]["tls"]["client_cert_chain"]``
  holds the leaf (PEM); without a verified certificate the extension is left
  out and nothing from the request can stand in for it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from kaitiaki.errors import BadRequest, HeadersTooLarge, Refusal
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.gateway.responses import FHIR_JSON, security_headers

__all__ = ["DEFAULT_MAX_HEAD_BYTES", "ListenerProtocol"]

DEFAULT_MAX_HEAD_BYTES = 32768


class _HeadTooLarge(Exception):
    """Raised in a parser callback; llhttp stops and uvicorn answers 400,
    which :meth:`ListenerProtocol.send_400_response` turns into 431."""


class _NotOriginForm(Exception):
    """Raised in a parser callback: a request target that is not a path."""


def _refusal_bytes(refusal: Refusal) -> bytes:
    body = refusal_outcome(refusal)
    head = [
        ("content-type", FHIR_JSON),
        ("content-length", str(len(body))),
        ("connection", "close"),
        *security_headers(cacheable=False),
    ]
    lines = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in head)
    return STATUS_LINE[refusal.status] + lines + b"\r\n" + body


_MALFORMED = _refusal_bytes(
    BadRequest("The request is not well-formed HTTP/1.1.", detail="framing")
)
_TOO_LARGE = _refusal_bytes(
    HeadersTooLarge("The request line and header fields are too large.")
)


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
    travels with the server settings into worker processes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configured = self.config.h11_max_incomplete_event_size
        self.max_head_bytes = configured or DEFAULT_MAX_HEAD_BYTES
        self._head_bytes = 0
        self._head_too_large = False
        self._peer_pem: str | None = None
        inner = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            if self._peer_pem is not None and scope.get("type") == "http":
                tls = {"client_cert_chain": [self._peer_pem], "server_cert": None}
                scope = {**scope, "extensions": {**scope.get("extensions", {})}}
                scope["extensions"]["tls"] = tls
            await inner(scope, receive, send)

        self.app = with_tls

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer_pem = _verified_peer(transport)

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp may deliver a long name or value in several pieces; each
        # piece counts, with the line's ": " and CRLF.
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # Only origin-form ("/path?query"): uvicorn would reduce an
        # absolute-form target to its path, hiding the host it named, and an
        # authority-form (CONNECT) or asterisk-form target has no path.
        if not self.url.startswith(b"/"):
            raise _NotOriginForm
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_TOO_LARGE if self._head_too_large else _MALFORMED)
        self.transport.close()
