"""An upstream reply reaches the client whole, however it arrives, and one
past the size bound is refused rather than cut short."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kaitiaki.gateway import upstream
from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import StandIn, gateway_toml

ENTRIES = 400  # about 1.3 MB: many socket reads, sent in many writes


def _bundle_pieces() -> list[bytes]:
    entries = [
        {"resource": {"resourceType": "Patient", "id": f"p{n}", "text": "x" * 3000}}
        for n in range(ENTRIES)
    ]
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    data = json.dumps(bundle).encode()
    return [data[at : at + 16384] for at in range(0, len(data), 16384)]


PIECES = _bundle_pieces()


def _slow_upstream() -> Starlette:
    async def bundle(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for piece in PIECES:
                yield piece
                await asyncio.sleep(0.001)  # each piece its own socket read

        size = str(sum(len(piece) for piece in PIECES))
        return StreamingResponse(
            pieces(),
            media_type="application/fhir+json",
            headers={"content-length": size},
        )

    return Starlette(routes=[Route("/{path:path}", bundle)])


@pytest.fixture
def client(standin: StandIn, tmp_path: Path) -> Iterator[httpx.Client]:
    with ThreadServer(_slow_upstream()) as upstream_server:
        toml = gateway_toml(standin.url, upstream_server.url, tmp_path)
        with (
            ThreadServer(Gateway(parse_settings(toml, source="t"))) as server,
            httpx.Client(base_url=server.url, timeout=20) as client,
        ):
            yield client


def _search(client: httpx.Client, standin: StandIn) -> httpx.Response:
    headers = {
        "Accept": "application/fhir+json",
        "Authorization": f"Bearer {standin.token()}",
    }
    return client.get("/fhir/Patient", headers=headers)


def test_a_reply_arriving_in_pieces_is_forwarded_whole(
    client: httpx.Client, standin: StandIn
) -> None:
    response = _search(client, standin)
    assert response.status_code == 200
    assert response.content == b"".join(PIECES)
    assert len(response.json()["entry"]) == ENTRIES


def test_a_reply_past_the_bound_is_refused_not_cut_short(
    client: httpx.Client, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = sum(len(piece) for piece in PIECES)
    monkeypatch.setattr(upstream, "MAX_REPLY_BYTES", whole - 1)
    response = _search(client, standin)
    assert response.status_code == 502
    assert response.json()["resourceType"] == "OperationOutcome"
    assert b"Patient" not in response.content
    monkeypatch.setattr(upstream, "MAX_REPLY_BYTES", whole)
    assert _search(client, standin).content == b"".join(PIECES)


WHOLE = b"".join(PIECES)
GZIPPED = gzip.compress(WHOLE)


def _coded_upstream(reply: dict[str, bytes]) -> Starlette:
    async def coded(request: Request) -> Response:
        response = Response(reply["body"], media_type="application/fhir+json")
        # One Content-Encoding field line per line of the coding.
        for line in reply["coding"].split(b"\n"):
            response.raw_headers.append((b"content-encoding", line))
        return response

    return Starlette(routes=[Route("/{path:path}", coded)])


@pytest.fixture
def coded(
    standin: StandIn, tmp_path: Path
) -> Iterator[tuple[httpx.Client, dict[str, bytes]]]:
    reply = {"body": GZIPPED, "coding": b"gzip"}
    with ThreadServer(_coded_upstream(reply)) as upstream_server:
        toml = gateway_toml(standin.url, upstream_server.url, tmp_path)
        with (
            ThreadServer(Gateway(parse_settings(toml, source="t"))) as server,
            httpx.Client(base_url=server.url, timeout=20) as client,
        ):
            yield client, reply


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (b"gzip", GZIPPED),
        (b"x-gzip", GZIPPED),
        (b"gzip", gzip.compress(WHOLE[:1000]) + gzip.compress(WHOLE[1000:])),
        (b"deflate", zlib.compress(WHOLE)),
        (b"deflate", _raw_deflate(WHOLE)),
        (b"identity", WHOLE),
    ],
    ids=["gzip", "x-gzip", "gzip members", "deflate", "raw deflate", "identity"],
)
def test_a_compressed_reply_is_forwarded_decoded(
    coded: tuple[httpx.Client, dict[str, bytes]],
    standin: StandIn,
    coding: bytes,
    body: bytes,
) -> None:
    client, reply = coded
    reply.update(body=body, coding=coding)
    response = _search(client, standin)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.content == WHOLE


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        # Whole framing (Content-Length met), but the gzip stream stops short
        # of its last block and trailer: aiohttp took it for the whole body.
        (b"gzip", GZIPPED[: len(GZIPPED) // 2]),
        (b"gzip", GZIPPED[:-8]),
        (b"deflate", zlib.compress(WHOLE)[:-4]),
        (b"gzip", GZIPPED + b"trailing"),
        (b"gzip", b"not gzip at all"),
        (b"br", b"not brotli"),
        # Two field lines are one list (RFC 9110 §5.3): coded twice, not once.
        (b"gzip\ngzip", gzip.compress(GZIPPED)),
        (b"identity\ngzip", GZIPPED),
    ],
    ids=[
        "gzip half",
        "gzip no trailer",
        "deflate cut",
        "junk",
        "garbage",
        "br",
        "gzip in two lines",
        "identity then gzip",
    ],
)
def test_a_compressed_reply_cut_short_is_refused_not_forwarded(
    coded: tuple[httpx.Client, dict[str, bytes]],
    standin: StandIn,
    coding: bytes,
    body: bytes,
) -> None:
    client, reply = coded
    reply.update(body=body, coding=coding)
    response = _search(client, standin)
    assert response.status_code == 502
    assert response.json()["resourceType"] == "OperationOutcome"
    assert b"Patient" not in response.content


def test_a_gzip_bomb_is_refused_by_its_decoded_size(
    coded: tuple[httpx.Client, dict[str, bytes]],
    standin: StandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, reply = coded
    monkeypatch.setattr(upstream, "MAX_REPLY_BYTES", 1_048_576)
    reply.update(body=gzip.compress(b" " * 64 * 1_048_576), coding=b"gzip")
    response = _search(client, standin)
    assert response.status_code == 502
    assert response.json()["resourceType"] == "OperationOutcome"
