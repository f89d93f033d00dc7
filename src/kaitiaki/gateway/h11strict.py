"""uvicorn's h11 protocol, refusing bare LF line endings in the message head,
and telling the app which client certificate the TLS connection verified.

RFC 9112 §2.2 lets a recipient accept a lone LF as a line terminator, and h11
does; a proxy in front of the gateway may not, and then the two read
different headers from the same bytes (request smuggling). Kaitiaki refuses
it: a request line, header line or trailer line that ends in LF without CR
is a protocol error, answered 400 with the connection closed, like every
other framing fault h11 finds. This reaches into h11's receive buffer (a
private class); ``tests/gateway/test_framing.py`` fails if an h11 upgrade
changes it.

uvicorn does not fill in the ASGI TLS extension, so a certificate-bound token
(RFC 8705) could only be checked behind a proxy that forwards the
certificate. On a TLS listener that verified a client certificate
(``gateway.tls_client_ca``), this protocol puts it in
``scope["extensions"]["tls"]["client_cert_chain"]`` (the leaf, PEM), as the
ASGI TLS extension specifies; without a verified certificate the extension is
left out and nothing from the request can stand in for it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import h11
from h11._receivebuffer import ReceiveBuffer
from uvicorn.protocols.http.h11_impl import H11Protocol

from kaitiaki.errors import ConfigError

__all__ = ["StrictH11Protocol"]

# A message head is at most h11's incomplete-event limit (16 KiB by default).
_HEAD_PEEK = 65536


class _StrictReceiveBuffer(ReceiveBuffer):
    def maybe_extract_lines(self) -> Any:
        head = bytes(self._data[:_HEAD_PEEK])
        before = len(self._data)
        lines = super().maybe_extract_lines()
        if lines is not None:
            raw = head[: before - len(self._data)]
            if raw.count(b"\n") != raw.count(b"\r\n"):
                raise h11.RemoteProtocolError("bare LF in the message head", 400)
        return lines


def _verified_peer(transport: asyncio.BaseTransport) -> str | None:
    """The PEM of the client certificate the TLS handshake verified, if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else None


class StrictH11Protocol(H11Protocol):
    """The h11 protocol with :class:`_StrictReceiveBuffer` in its connection,
    and the ASGI TLS extension for a verified client certificate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(getattr(self.conn, "_receive_buffer", None), ReceiveBuffer):
            raise ConfigError("this h11 version has no receive buffer to harden")
        self.conn._receive_buffer = _StrictReceiveBuffer()
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
