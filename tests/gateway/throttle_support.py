"""A gateway with throttle settings of the test's choosing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import GatewayUnderTest, Recorder, StandIn, upstream_app

FHIR = {"Accept": "application/fhir+json"}


def settings_toml(issuer: str, upstream: str, audit: Path, limits: str) -> str:
    return f"""
[gateway]
port = 0
public_url = "https://gw.example"
upstream = "{upstream}/fhir"
instance = "throttle-gw"
[auth]
issuer = "{issuer}"
audience = "https://gw.example/fhir"
algorithms = ["ES256"]
[authorise]
client_credentials = "allow"
[audit]
sink = "jsonl"
path = "{audit}"
[limits]
{limits}
"""


@contextmanager
def throttled_gateway(
    standin: StandIn,
    recorder: Recorder,
    tmp: Path,
    limits: str,
    upstream_asgi: Any = None,
) -> Iterator[tuple[GatewayUnderTest, Gateway]]:
    with ThreadServer(upstream_asgi or upstream_app(recorder)) as upstream:
        text = settings_toml(standin.url, upstream.url, tmp / "audit.jsonl", limits)
        app = Gateway(parse_settings(text, source="test"))
        with (
            ThreadServer(app) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield GatewayUnderTest(client, recorder, tmp / "audit.jsonl"), app


def bearer(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}
