"""`audit verify` finds every kind of tampering, on every readable sink, and
names the first bad position."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from kaitiaki.audit import Recorder, load_audit_keys, open_sink
from kaitiaki.audit.chain import record_hash
from kaitiaki.audit.commands import verify_report, verify_sink
from kaitiaki.audit.events import COLUMN_NAMES, Record
from kaitiaki.settings import AuditSettings
from tests.audit.conftest import PG_URL, request_event, settings_for

Rows = list[Record]


def _write_chain(settings: AuditSettings, instance: str, count: int) -> None:
    recorder = Recorder(
        settings, instance, open_sink(settings), load_audit_keys(settings)
    )

    async def write() -> None:
        for number in range(count):
            await recorder.record(request_event(number, instance=instance))

    anyio.run(write)
    recorder.close()


def _read(settings: AuditSettings) -> Rows:
    sink = open_sink(settings)
    rows = [record for _, record in sink.scan()]
    sink.close()
    return rows


def _rewrite(settings: AuditSettings, rows: Rows) -> None:
    """Replace the whole store with ``rows``, as an attacker with write access."""
    if settings.sink == "jsonl":
        text = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
        Path(settings.path).write_text(text)
        return
    marks = ", ".join(["%s"] * (len(COLUMN_NAMES) + 1))
    names = ", ".join(f'"{n}"' for n in ("position", *COLUMN_NAMES))
    values = [(i + 1, *(row[n] for n in COLUMN_NAMES)) for i, row in enumerate(rows)]
    if settings.sink == "sqlite":
        with sqlite3.connect(settings.path) as db:
            db.execute("DROP INDEX IF EXISTS audit_event_chain")
            db.execute("DELETE FROM audit_event")
            qmarks = marks.replace("%s", "?")
            db.executemany(
                f"INSERT INTO audit_event ({names}) VALUES ({qmarks})", values
            )
        return
    with psycopg.connect(PG_URL) as conn:
        conn.execute(f'DROP INDEX IF EXISTS "{settings.table}_chain"')
        conn.execute(f'DELETE FROM "{settings.table}"')
        with conn.cursor() as cursor:
            cursor.executemany(
                f'INSERT INTO "{settings.table}" ({names}) VALUES ({marks})', values
            )


def _edit(rows: Rows) -> int:
    rows[3]["status"] = 403
    return 3


def _delete(rows: Rows) -> int:
    del rows[3]
    return 3


def _insert(rows: Rows) -> int:
    rows.insert(3, dict(rows[1]))
    return 3


def _reorder(rows: Rows) -> int:
    rows[2], rows[4] = rows[4], rows[2]
    return 2


def _rehash_from(rows: Rows, start: int) -> None:
    for index in range(start, len(rows)):
        rows[index]["prev_hash"] = rows[index - 1]["hash"]
        rows[index]["hash"] = record_hash(rows[index])


def _rewrite_chain(rows: Rows) -> int:
    """Edit, then recompute every later hash: only the checkpoint catches it."""
    rows[1]["client_id"] = "someone-else"
    _rehash_from(rows, 1)
    return next(i for i, row in enumerate(rows) if row["event_type"] == "checkpoint")


def _truncate(rows: Rows) -> int:
    """Cut the newest records, the last checkpoint with them."""
    del rows[-3:]
    return len(rows)


TAMPERING: dict[str, Callable[[Rows], int]] = {
    "edited": _edit,
    "deleted": _delete,
    "inserted": _insert,
    "reordered": _reorder,
    "rewritten": _rewrite_chain,
    "truncated": _truncate,
}


def _label(settings: AuditSettings, index: int, rows: Rows) -> str:
    if index == len(rows):
        return "end of the gw-a chain"
    if settings.sink == "jsonl":
        return f"{Path(settings.path).name}:{index + 1}"
    return f"row {index + 1}"


@pytest.fixture(params=["sqlite", "jsonl", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AuditSettings:
    table = request.getfixturevalue("pg_table") if request.param == "postgresql" else ""
    return settings_for(
        request.param, tmp_path, table or "audit_event", checkpoint_every_events=4
    )


def test_verify_accepts_an_untouched_chain(store: AuditSettings) -> None:
    _write_chain(store, "gw-a", 10)

    (report,) = verify_sink(store, [])

    assert report.ok and report.events == 10 + 3 and report.checkpoints == 3
    assert report.unsigned_tail == 0
    assert "gw-a: OK" in verify_report([report])[0]


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_verify_names_the_first_bad_position(store: AuditSettings, kind: str) -> None:
    _write_chain(store, "gw-a", 10)
    rows = _read(store)
    bad = TAMPERING[kind](rows)
    _rewrite(store, rows)

    (report,) = verify_sink(store, [])

    assert not report.ok
    assert report.position == _label(store, bad, rows), report.problem


def test_verify_continues_a_chain_across_restarts(store: AuditSettings) -> None:
    _write_chain(store, "gw-a", 3)
    _write_chain(store, "gw-a", 3)

    (report,) = verify_sink(store, [])

    assert report.ok and report.last_seq == 8


def test_verify_checks_each_instance_chain_in_one_postgres_table(
    pg_table: str, tmp_path: Path
) -> None:
    shared: dict[str, Any] = {"checkpoint_every_events": 3}
    one = settings_for("postgresql", tmp_path / "a", pg_table, **shared)
    two = settings_for("postgresql", tmp_path / "b", pg_table, **shared)
    for _ in range(2):
        _write_chain(one, "gw-a", 4)
        _write_chain(two, "gw-b", 4)
    public_b = tmp_path / "b" / "keys" / "checkpoint.pub.jwk"

    reports = verify_sink(one, [public_b])
    assert [(r.instance, r.ok, r.last_seq) for r in reports] == [
        ("gw-a", True, 12),
        ("gw-b", True, 12),
    ]

    rows = _read(one)
    victim = next(
        i for i, r in enumerate(rows) if r["instance"] == "gw-b" and r["seq"] == 5
    )
    rows[victim]["route"] = "/fhir/Observation"
    _rewrite(one, rows)

    by_instance = {r.instance: r for r in verify_sink(one, [public_b])}
    assert by_instance["gw-a"].ok
    assert by_instance["gw-b"].position == f"row {victim + 1}"


def test_verify_refuses_checkpoints_of_an_unknown_key(
    pg_table: str, tmp_path: Path
) -> None:
    one = settings_for(
        "postgresql", tmp_path / "a", pg_table, checkpoint_every_events=2
    )
    two = settings_for(
        "postgresql", tmp_path / "b", pg_table, checkpoint_every_events=2
    )
    _write_chain(one, "gw-a", 2)
    _write_chain(two, "gw-b", 2)

    by_instance = {r.instance: r for r in verify_sink(one, [])}

    assert by_instance["gw-a"].ok
    assert "unknown key" in str(by_instance["gw-b"].problem)


OLD_SCHEMA = (
    "CREATE TABLE audit_event (position INTEGER PRIMARY KEY AUTOINCREMENT, "
    '"time", "instance", "correlation_id", "method", "route", "status", "outcome", '
    '"client_address", "latency_ms", "interaction", "resource_type", "client_id", '
    '"subject", "refusal_code", "refusal_step", "bytes_in", "bytes_out")'
)


def test_a_table_of_an_older_release_is_extended_and_its_rows_reported(
    tmp_path: Path,
) -> None:
    settings = settings_for("sqlite", tmp_path)
    with sqlite3.connect(settings.path) as db:
        db.execute(OLD_SCHEMA)
        db.execute(
            "INSERT INTO audit_event (time, instance, status) VALUES ('t', 'gw-a', 200)"
        )
    Path(settings.path).chmod(0o600)

    _write_chain(settings, "gw-a", 3)
    (report,) = verify_sink(settings, [])

    assert report.ok and report.unchained == 1 and report.last_seq == 4
    assert "1 older unchained records" in verify_report([report])[0]


def test_a_torn_or_foreign_jsonl_line_is_reported(tmp_path: Path) -> None:
    settings = settings_for("jsonl", tmp_path)
    _write_chain(settings, "gw-a", 2)
    with Path(settings.path).open("a") as handle:
        handle.write('{"event_type":"request","token":"x"}\n')

    reports = {r.instance: r for r in verify_sink(settings, [])}

    assert reports["gw-a"].ok
    assert reports["(unreadable)"].position == "audit.jsonl:4"
