"""uvicorn's h11 protocol, refusing bare LF line endings in the message head.

RFC 9112 §2.2 lets a recipient accept a lone LF as a line terminator, and h11
does; a proxy in front of the gateway may not, and then the two read
different headers from the same bytes (request smuggling). Kaitiaki refuses
it: a request line, header line or trailer line that ends in LF without CR
is a protocol error, answered 400 with the connection closed, like every
other framing fault h11 finds. This reaches into h11's receive buffer (a
private class); ``tests/gateway/test_framing.py`` fails if an h11 upgrade
changes it.
"""

from __future__ import annotations

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


class StrictH11Protocol(H11Protocol):
    """The h11 protocol with :class:`_StrictReceiveBuffer` in its connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(getattr(self.conn, "_receive_buffer", None), ReceiveBuffer):
            raise ConfigError("this h11 version has no receive buffer to harden")
        self.conn._receive_buffer = _StrictReceiveBuffer()
