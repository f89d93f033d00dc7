"""Documents fetched from an issuer (discovery, JWKS, introspection replies)
are decoded by Kaitiaki, bounded in their decoded size, and refused when
their content coding is cut short, malformed or unknown; aiohttp's own
decoding would take a gzip stream that stops short for a whole body."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from kaitiaki.tokens.metadata import fetch_json
from tests.conftest import ThreadServer

pytestmark = pytest.mark.anyio

DOCUMENT = json.dumps({"keys": [{"kty": "EC", "kid": "k1"}], "pad": "x" * 4000})
GZIPPED = gzip.compress(DOCUMENT.encode())
# Far more than the 256 KiB a fetched document may hold, once decoded.
BOMB = gzip.compress(b'{"pad": "' + b"0" * (8 * 2**20) + b'"}')

REPLIES: dict[str, tuple[str, bytes]] = {
    "/plain": ("identity", DOCUMENT.encode()),
    "/gzip": ("gzip", GZIPPED),
    "/deflate": ("deflate", zlib.compress(DOCUMENT.encode())),
    "/cut-short": ("gzip", GZIPPED[: len(GZIPPED) // 2]),
    "/no-trailer": ("gzip", GZIPPED[:-8]),
    "/malformed": ("gzip", b"\x1f\x8b" + b"\x00" * 40),
    "/unknown": ("compress", DOCUMENT.encode()),
    "/bomb": ("gzip", BOMB),
}


async def issuer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    coding, body = REPLIES[scope["path"]]
    headers = [(b"content-type", b"application/json")]
    if coding != "identity":
        headers.append((b"content-encoding", coding.encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer(issuer) as running:
        yield running


async def _fetch(server: ThreadServer, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        document, _ = await fetch_json(session, server.url + path)
    return document


@pytest.mark.parametrize("path", ["/plain", "/gzip", "/deflate"])
async def test_a_whole_document_is_read_in_any_coding(
    server: ThreadServer, path: str
) -> None:
    assert await _fetch(server, path) == json.loads(DOCUMENT)


@pytest.mark.parametrize(
    "path", ["/cut-short", "/no-trailer", "/malformed", "/unknown"]
)
async def test_a_coding_cut_short_malformed_or_unknown_is_refused(
    server: ThreadServer, path: str
) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await _fetch(server, path)


async def test_a_compression_bomb_is_refused_by_its_decoded_size(
    server: ThreadServer,
) -> None:
    with pytest.raises(ValueError, match="too large"):
        await _fetch(server, "/bomb")
