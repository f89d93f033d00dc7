"""Audit fixtures: settings for each sink kind, a unique PostgreSQL table per
test (dropped afterwards), records with a chain."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kaitiaki.audit import AuditEvent, Record, load_audit_keys
from kaitiaki.audit.sinks import AuditSink, StdoutSink, open_sink
from kaitiaki.settings import AuditSettings
from tests.conftest import backends_required

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SINK_KINDS = ("jsonl", "sqlite", "postgresql", "stdout")


@pytest.fixture
def pg_table() -> Iterator[str]:
    table = f"audit_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        if backends_required():
            raise
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
    with conn:
        yield table
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def settings_for(
    kind: str, tmp: Path, table: str = "audit_event", **extra: Any
) -> AuditSettings:
    paths = {"jsonl": "audit.jsonl", "sqlite": "audit.sqlite"}
    values: dict[str, Any] = {"sink": kind, "path": str(tmp / paths.get(kind, "audit"))}
    if kind == "postgresql":
        values.update(database_url=PG_URL, table=table)
    values["hmac_key_file"] = str(tmp / "keys" / "hmac.key")
    values["checkpoint_key_file"] = str(tmp / "keys" / "checkpoint.jwk")
    return AuditSettings(**{**values, **extra})


class StdoutCapture:
    """A stdout sink over a buffer, so the contract tests can read it back."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.sink = StdoutSink(self.buffer)

    def records(self) -> list[Record]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]


@pytest.fixture(params=SINK_KINDS)
def sink_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_sink(
    sink_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[AuditSink, Callable[[], list[Record]]]]:
    """A fresh sink of each kind and a way to read everything back."""
    if sink_kind == "stdout":
        capture = StdoutCapture()
        yield capture.sink, capture.records
        return
    table = request.getfixturevalue("pg_table") if sink_kind == "postgresql" else ""
    sink = open_sink(settings_for(sink_kind, tmp_path, table or "audit_event"))
    try:
        yield sink, lambda: [record for _, record in sink.scan()]
    finally:
        sink.close()


def request_event(number: int, **extra: Any) -> Record:
    values: dict[str, Any] = {
        "time": f"2026-12-04T05:{number // 60:02d}:{number % 60:02d}.000000+00:00",
        "instance": "gw-a",
        "correlation_id": f"corr-{number}",
        "method": "GET",
        "route": "/fhir/Patient/{id}",
        "status": 200,
        "outcome": "served",
        "client_address": "127.0.0.1",
        "latency_ms": 1.25,
        "interaction": "read",
        "resource_type": "Patient",
        "client_id": "svc",
    }
    values.update(extra)
    return AuditEvent(**values).to_record()


@pytest.fixture
def keys(tmp_path: Path) -> Any:
    return load_audit_keys(settings_for("sqlite", tmp_path))
