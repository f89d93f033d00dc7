"""Fixtures for the development issuer: a state dir, the app, a forge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from issuer_support import Forge, TestClient, make_settings

from kaitiaki.issuer import create_app
from kaitiaki.settings import DevIssuerSettings


@pytest.fixture
def settings(tmp_path: Path) -> DevIssuerSettings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: DevIssuerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=settings.url) as test_client:
        yield test_client


@pytest.fixture
def forge(settings: DevIssuerSettings, client: TestClient) -> Forge:
    return Forge(settings)
