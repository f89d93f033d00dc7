"""Reading a client reply's body within a size bound.

aiohttp's ``StreamReader.read(n)`` returns what is buffered, up to ``n``
bytes, not ``n`` bytes: one call on a body that arrives in pieces yields its
first piece only. Every bounded read of a reply goes through here instead.
"""

from __future__ import annotations

import aiohttp

__all__ = ["read_bounded"]


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
