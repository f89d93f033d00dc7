"""Audit cost per request for each sink and durability mode, beside anchors.

Run: ``.venv/bin/python bench/audit_bench.py [--rounds N] [--no-postgres]``.
Everything is in this process, in a temporary folder (and a temporary table
on the PostgreSQL server at 127.0.0.1:5432, database ``test``).

Per sink and mode (``strict``, ``strict x8`` with eight concurrent callers
sharing group commits, ``batched``), two numbers in µs per request:

- ``caller``: what a request waits for on average (strict: the commit;
  batched: the enqueue), including building and chaining the event;
- ``sustained``: wall time until every record is durable, divided by the
  count (batched: the writer's amortised cost).

Each row is measured right after its anchor, because the disk is shared and
fsync times drift: a bare ``sqlite3`` insert + commit of one 30-column row
(WAL, synchronous=FULL) for SQLite, a bare file append + fsync for JSON Lines
and stdout, a bare ``psycopg`` insert + commit for PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from kaitiaki.audit import AuditEvent, Recorder, load_audit_keys, open_sink
from kaitiaki.audit.redact import patient_identifier, redact_query
from kaitiaki.audit.sinks import StdoutSink
from kaitiaki.settings import AuditSettings

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROW = tuple(f"value-{n}" for n in range(30))


def _event(number: int, keys: Any) -> dict[str, Any]:
    query = (("patient", "ZZZ0016"), ("_count", "10"))
    raw = patient_identifier("Observation", None, query)
    return AuditEvent(
        time="2026-12-04T05:00:00.000000+00:00",
        instance="bench",
        correlation_id=f"bench-{number}",
        method="GET",
        route="/fhir/{type}",
        status=200,
        outcome="served",
        client_address="127.0.0.1",
        latency_ms=1.5,
        interaction="search-type",
        resource_type="Observation",
        client_id="svc",
        patient=keys.pseudonymiser.patient(raw or ""),
        query=redact_query(query, keys.pseudonymiser),
    ).to_record()


def _timed(work: Callable[[], None], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - started) / rounds * 1e6


def anchor_sqlite(folder: Path, rounds: int) -> float:
    (folder / "anchor.sqlite").unlink(missing_ok=True)
    db = sqlite3.connect(folder / "anchor.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"CREATE TABLE t ({', '.join(f'c{n} TEXT' for n in range(30))})")
    marks = ", ".join("?" * 30)

    def insert() -> None:
        db.execute("BEGIN")
        db.execute(f"INSERT INTO t VALUES ({marks})", ROW)
        db.execute("COMMIT")

    try:
        return _timed(insert, rounds)
    finally:
        db.close()


def anchor_file(folder: Path, rounds: int) -> float:
    fd = os.open(folder / "anchor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    line = (",".join(ROW) * 3 + "\n").encode()

    def append() -> None:
        os.write(fd, line)
        os.fsync(fd)

    try:
        return _timed(append, rounds)
    finally:
        os.close(fd)


def anchor_postgres(table: str, rounds: int) -> float:
    with psycopg.connect(PG_URL) as conn:
        conn.execute(
            f'CREATE TABLE "{table}" ({", ".join(f"c{n} text" for n in range(30))})'
        )
        conn.commit()
        marks = ", ".join(["%s"] * 30)

        def insert() -> None:
            conn.execute(f'INSERT INTO "{table}" VALUES ({marks})', ROW)
            conn.commit()

        try:
            return _timed(insert, rounds)
        finally:
            conn.execute(f'DROP TABLE "{table}"')
            conn.commit()


def measure(
    settings: AuditSettings, rounds: int, sink: Any = None, concurrency: int = 1
) -> tuple[float, float]:
    """Mean µs one record call waits, and wall µs per durable record, with
    ``concurrency`` callers at once."""
    keys = load_audit_keys(settings)
    recorder = Recorder(settings, "bench", sink or open_sink(settings), keys)
    waits: list[float] = []

    async def caller(first: int) -> None:
        for number in range(first, rounds, concurrency):
            started = time.perf_counter()
            if not await recorder.record(_event(number, keys)):
                raise RuntimeError("the recorder refused a record")
            waits.append(time.perf_counter() - started)

    async def run() -> None:
        await asyncio.gather(*(caller(first) for first in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(run())
    recorder.flush()
    sustained = (time.perf_counter() - started) / rounds * 1e6
    recorder.close()
    return sum(waits) / len(waits) * 1e6, sustained


def _settings(kind: str, folder: Path, durability: str, table: str) -> AuditSettings:
    path = folder / f"{kind}-{durability}" / "audit"
    values: dict[str, Any] = {
        "sink": kind,
        "path": str(path),
        "durability": durability,
        "flush_interval_seconds": 0.05,
        "queue_size": 100_000,
    }
    if kind == "postgresql":
        values.update(database_url=PG_URL, table=f"{table}_{durability}")
    return AuditSettings(**values)


def _anchor(kind: str, folder: Path, table: str, rounds: int) -> tuple[str, float]:
    if kind == "sqlite":
        return "sqlite3 insert+commit", anchor_sqlite(folder, rounds)
    if kind == "postgresql":
        return "psycopg insert+commit", anchor_postgres(table + "_anchor", rounds)
    return "file append+fsync", anchor_file(folder, rounds)


def _row(
    kind: str, mode: tuple[str, int], folder: Path, table: str, rounds: int
) -> str:
    durability, concurrency = mode
    name, anchor = _anchor(kind, folder, table, rounds)
    settings = _settings(kind, folder, durability, table)
    null = open(os.devnull, "w") if kind == "stdout" else None  # noqa: SIM115
    try:
        caller, sustained = measure(
            settings, rounds, StdoutSink(null) if null else None, concurrency
        )
    finally:
        if kind == "postgresql":
            _drop(f"{table}_{durability}")
        if null is not None:
            null.close()
    shown = durability if concurrency == 1 else f"{durability} x{concurrency}"
    return (
        f"| {kind} | {shown} | {caller:.1f} | {sustained:.1f} | "
        f"{name} {anchor:.1f} | {sustained / anchor:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rounds = min(args.rounds, 20_000)
    table = f"audit_bench_{uuid.uuid4().hex[:8]}"
    kinds = ["sqlite", "jsonl", "stdout"] + ([] if args.no_postgres else ["postgresql"])
    print("| sink | durability | caller µs | sustained µs | anchor µs | ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for mode in (("strict", 1), ("strict", 8), ("batched", 1)):
                print(_row(kind, mode, Path(tmp), table, rounds), flush=True)


def _drop(table: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


if __name__ == "__main__":
    main()
