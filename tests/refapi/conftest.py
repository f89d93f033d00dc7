"""Fixtures for the reference API: a fresh SQLite database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from refapi_support import TestClient
from sqlalchemy import create_engine, text

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


POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"refapi_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
