"""An upstream reply reaches the client whole, however it arrives, and one
past the size bound is refused rather than cut short."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
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
