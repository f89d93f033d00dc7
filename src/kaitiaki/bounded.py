"""Reading a client reply's body within a size bound.

aiohttp's ``StreamReader.read(n)`` returns what is buffered, up to ``n``
bytes, not ``n`` bytes: one call on a body that arrives in pieces yields its
first piece only. Every bounded read of a reply goes through here instead.

aiohttp's own decoding of a compressed reply takes a gzip stream that stops
short (no final block, no trailer) for a whole body, so a reply cut short
inside its coding would pass for a complete one. :func:`read_decoded`
decodes a reply read with ``auto_decompress=False`` itself, bounds the
decoded size, and reports a coding that does not end as the body being
incomplete.
"""

from __future__ import annotations

import zlib

import aiohttp

__all__ = ["decode_body", "read_bounded", "read_decoded"]

# The codings aiohttp asks for (its default Accept-Encoding) without brotli
# or zstd installed; ``x-gzip`` is gzip's old name (RFC 9110 §8.4.1.3).
_GZIP = zlib.MAX_WBITS | 16
_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})


async def read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body, or its first ``max_bytes + 1`` bytes when it is longer:
    enough for the caller to tell that it is too large."""
    content = response.content
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = await content.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if content.at_eof():
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _incomplete(why: str) -> aiohttp.ClientPayloadError:
    return aiohttp.ClientPayloadError(f"Response payload is not completed: {why}")


class _Decoder:
    """A gzip or deflate decoder whose output stops past ``max_bytes``."""

    def __init__(self, coding: str, max_bytes: int) -> None:
        self.coding, self.max_bytes = coding, max_bytes
        self.inflater: zlib._Decompress | None = None
        self.head = b""
        self.size = 0

    def _start(self, first: bytes) -> zlib._Decompress:
        wbits = _GZIP
        if self.coding == "deflate":
            # "deflate" is zlib-wrapped (RFC 9110 §8.4.1.2); some servers
            # send raw deflate, which aiohttp accepts too. A zlib header is
            # CM 8 and a multiple of 31.
            wrapped = first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
            wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> list[bytes]:
        """The decoded pieces of ``data``; they end past the bound."""
        if self.inflater is None:
            self.head += data
            if len(self.head) < 2:
                return []
            self.inflater, data, self.head = self._start(self.head), self.head, b""
        pieces: list[bytes] = []
        while data and self.size <= self.max_bytes:
            if self.inflater.eof:
                # Only gzip may carry another member after the first.
                if self.coding == "deflate":
                    raise _incomplete("data after the end of the deflate stream")
                self.inflater = zlib.decompressobj(_GZIP)
            try:
                piece = self.inflater.decompress(data, self.max_bytes + 1 - self.size)
            except zlib.error as exc:
                raise _incomplete("malformed content coding") from exc
            pieces.append(piece)
            self.size += len(piece)
            inflater = self.inflater
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        return pieces

    def finish(self) -> None:
        if self.head or (self.inflater is not None and not self.inflater.eof):
            raise _incomplete("the content coding does not end")


def _decoder_for(coding: str, max_bytes: int) -> _Decoder | None:
    """The decoder a Content-Encoding needs (None for none); a coding other
    than gzip or deflate is refused as a body cut short is."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding not in _CODINGS:
        raise _incomplete("unsupported content coding")
    return _Decoder(coding, max_bytes)


async def read_decoded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """As :func:`read_bounded`, for a reply read with ``auto_decompress=False``:
    the decoded body, bounded in its decoded size. A coding other than gzip
    or deflate, or one that is malformed or does not end, raises
    :class:`aiohttp.ClientPayloadError` as a body cut short does."""
    # Every field line: two are one list (RFC 9110 §5.3), a coding applied twice.
    lines = response.headers.getall("Content-Encoding", ())
    decoder = _decoder_for(", ".join(lines), max_bytes)
    if decoder is None:
        return await read_bounded(response, max_bytes)
    pieces: list[bytes] = []
    async for data in response.content.iter_any():
        pieces += decoder.feed(data)
        if decoder.size > max_bytes:
            return b"".join(pieces)
    decoder.finish()
    return b"".join(pieces)


def decode_body(coding: str, body: bytes, max_bytes: int) -> bytes:
    """A whole body already in hand, decoded as :func:`read_decoded` decodes
    a reply: ``coding`` is its Content-Encoding; the same bound and the same
    error for a coding that is unknown, malformed or does not end."""
    decoder = _decoder_for(coding, max_bytes)
    if decoder is None:
        return body
    pieces = decoder.feed(body)
    if decoder.size <= max_bytes:
        decoder.finish()
    return b"".join(pieces)
