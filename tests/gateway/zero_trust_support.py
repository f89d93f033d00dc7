"""A gateway whose settings a test adjusts, in front of the recording upstream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import Settings, parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import (
    GatewayUnderTest,
    Recorder,
    StandIn,
    gateway_toml,
    upstream_app,
)


def adjusted(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """Settings with some fields of some sections replaced."""
    update = {
        name: getattr(settings, name).model_copy(update=fields)
        for name, fields in sections.items()
    }
    return settings.model_copy(update=update)


@contextmanager
def gateway_with(
    standin: StandIn, tmp: Path, **sections: dict[str, Any]
) -> Iterator[GatewayUnderTest]:
    recorder = Recorder()
    with ThreadServer(upstream_app(recorder)) as upstream:
        base = parse_settings(gateway_toml(standin.url, upstream.url, tmp), source="t")
        settings = Settings.model_validate(adjusted(base, **sections).model_dump())
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield GatewayUnderTest(client, recorder, tmp / "audit.jsonl")
