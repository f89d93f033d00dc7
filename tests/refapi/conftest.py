"""Fixtures for the reference API: a fresh SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from refapi_support import TestClient

from kaitiaki.refapi import create_app
from kaitiaki.settings import RefApiSettings


@pytest.fixture
def refapi_settings(tmp_path: Path) -> RefApiSettings:
    # A directory that does not exist yet: the app must create it.
    return RefApiSettings(
        database_url=f"sqlite:///{tmp_path}/var/refapi.sqlite",
        key_dir=str(tmp_path / "keys"),
    )


@pytest.fixture
def client(refapi_settings: RefApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(refapi_settings)) as test_client:
        yield test_client
