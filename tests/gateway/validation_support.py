"""A module-scoped gateway (stand-in issuer, recording upstream) with extra
settings, so the many table rows of the validation tests share one server."""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Iterator
from pathlib import Path

import httpx
from joserfc.jwk import ECKey

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import (
    GatewayUnderTest,
    Recorder,
    StandIn,
    gateway_toml,
    issuer_app,
    upstream_app,
)


@contextlib.contextmanager
def running_gateway(
    tmp: Path, extra: str = "", upstream: object = None
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    key = ECKey.generate_key("P-256", auto_kid=True)
    hits: list[int] = []
    port = free_port()
    recorder = Recorder()
    with (
        ThreadServer(issuer_app(key, hits, port), port) as issuer,
        ThreadServer(upstream or upstream_app(recorder)) as backend,
    ):
        settings = parse_settings(
            gateway_toml(
                issuer.url, backend.url, tmp, extra.replace("{upstream}", backend.url)
            ),
            source="test",
        )
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield (
                GatewayUnderTest(client, recorder, tmp / "audit.jsonl"),
                StandIn(key, issuer.url, hits),
            )


def send_raw(
    gateway: GatewayUnderTest,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, str]:
    """One request with the target exactly as written (httpx would normalise
    it) and no headers of the client's own; returns status and body text."""
    url = gateway.client.base_url
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()
