"""The SQL audit sinks: SQLite (embedded default) and PostgreSQL (several
gateway processes, one table, one chain per instance).

A batch is one transaction. ``(instance, seq)`` is unique, so two processes
that were given the same instance name fail loudly instead of forking a chain.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from kaitiaki.audit.events import COLUMN_NAMES, COLUMNS, Record
from kaitiaki.audit.sinks import Query
from kaitiaki.errors import AuditSinkError
from kaitiaki.issuer.keys import make_private_dir

__all__ = ["PostgresSink", "SqliteSink"]

_SQLITE_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL"}
_PG_TYPES = {str: "text", int: "bigint", float: "double precision"}
_INDEXED = ("time", "correlation_id", "client_id", "patient")


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _where(query: Query, mark: str) -> tuple[str, list[str]]:
    clauses, values = [], []
    if query.since is not None:
        clauses.append(f'"time" >= {mark}')
        values.append(query.since)
    if query.until is not None:
        clauses.append(f'"time" < {mark}')
        values.append(query.until)
    for name, value in query.equalities():
        clauses.append(f'"{name}" = {mark}')
        values.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


def _as_record(row: Sequence[Any]) -> Record:
    return dict(zip(COLUMN_NAMES, row, strict=True))


# Rows per INSERT: a batch goes in as a few multi-row statements, largest
# first, rather than one statement per row. sqlite3 lets go of the GIL for
# each statement it steps, and the writer thread must then wait for the busy
# event loop to hand it back: per row, that wait capped a writer at about
# 2,000 records a second, below what one gateway process serves. The sizes
# stay few, so their statements stay in sqlite3's cache; the largest keeps
# the bound values (34 per row) well under SQLite's 32,766.
_CHUNK_ROWS = (256, 64, 16, 4, 1)


def _chunks(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    at = 0
    for size in _CHUNK_ROWS:
        while len(rows) - at >= size:
            yield rows[at : at + size]
            at += size


_ROW_MARKS = "(" + ", ".join("?" for _ in COLUMN_NAMES) + ")"
_INSERTS: dict[int, str] = {}


def _insert_rows(count: int) -> str:
    statement = _INSERTS.get(count)
    if statement is None:
        marks = ", ".join([_ROW_MARKS] * count)
        columns = _quoted(COLUMN_NAMES)
        statement = f"INSERT INTO audit_event ({columns}) VALUES {marks}"  # noqa: S608
        _INSERTS[count] = statement
    return statement


class SqliteSink:
    """One SQLite file in WAL mode, ``synchronous=FULL``, mode 0600."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            if readonly:
                if not path.exists():
                    raise AuditSinkError(f"audit database {path}: does not exist yet")
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False
                )
                return
            make_private_dir(path.parent)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None
            )
            path.chmod(0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._create()
        except sqlite3.Error as exc:
            raise AuditSinkError(f"audit database {path}: {exc}") from exc

    def _create(self) -> None:
        columns = ", ".join(f'"{n}" {_SQLITE_TYPES[t]}' for n, t in COLUMNS)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS audit_event "
            f"(position INTEGER PRIMARY KEY AUTOINCREMENT, {columns})"
        )
        # A table from an older release gains the columns it lacks; its rows
        # stay as they are (``audit verify`` reports them as unchained).
        present = {row[1] for row in self._db.execute("PRAGMA table_info(audit_event)")}
        for name, kind in COLUMNS:
            if name not in present:
                self._db.execute(
                    f'ALTER TABLE audit_event ADD COLUMN "{name}" {_SQLITE_TYPES[kind]}'
                )
        self._db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS audit_event_chain "
            'ON audit_event ("instance", "seq")'
        )
        for name in _INDEXED:
            self._db.execute(
                f"CREATE INDEX IF NOT EXISTS audit_event_{name} "
                f'ON audit_event ("{name}")'
            )

    def append(self, records: Sequence[Record]) -> None:
        rows = [tuple(record[name] for name in COLUMN_NAMES) for record in records]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for chunk in _chunks(rows):
                    values = [value for row in chunk for value in row]
                    self._db.execute(_insert_rows(len(chunk)), values)
                self._db.execute("COMMIT")
            except BaseException as exc:
                # Whatever failed (a value sqlite3 cannot bind, too), the
                # transaction must not stay open for the next batch.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise AuditSinkError(f"audit database {self._path}: {exc}") from exc
                if isinstance(exc, ValueError):  # no value is echoed
                    raise AuditSinkError(
                        f"audit database {self._path}: {type(exc).__name__}"
                    ) from exc
                raise

    def _select(self, tail: str, values: Sequence[object]) -> list[Record]:
        statement = f"SELECT {_quoted(COLUMN_NAMES)} FROM audit_event{tail}"  # noqa: S608
        try:
            with self._lock:
                rows = self._db.execute(statement, tuple(values)).fetchall()
        except sqlite3.Error as exc:
            raise AuditSinkError(f"audit database {self._path}: {exc}") from exc
        return [_as_record(row) for row in rows]

    def head(self, instance: str) -> Record | None:
        found = self._select(
            ' WHERE "instance" = ? AND "seq" IS NOT NULL'
            " ORDER BY position DESC LIMIT 1",
            [instance],
        )
        return found[0] if found else None

    def scan(self) -> Iterator[tuple[str, Record]]:
        statement = (
            f"SELECT position, {_quoted(COLUMN_NAMES)} FROM audit_event "  # noqa: S608
            "ORDER BY position"
        )
        uri = f"file:{self._path}?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True)) as db:
                for row in db.execute(statement):
                    yield f"row {row[0]}", _as_record(row[1:])
        except sqlite3.Error as exc:
            raise AuditSinkError(f"audit database {self._path}: {exc}") from exc

    def search(self, query: Query, limit: int) -> list[Record]:
        where, values = _where(query, "?")
        found = self._select(
            f"{where} ORDER BY position DESC LIMIT ?", [*values, limit]
        )
        return found[::-1]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresSink:
    """One table shared by every gateway instance; reconnects after a failure."""

    def __init__(self, url: str, table: str, *, readonly: bool = False) -> None:
        self._url, self._table = url, sql.Identifier(table)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        if not readonly:
            with self._lock:
                self._run(self._create)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, connect_timeout=5)
        return self._conn

    def _run(self, work: Any, *args: Any) -> Any:
        try:
            conn = self._connection()
            with conn.transaction():
                return work(conn, *args)
        except psycopg.Error as exc:
            if self._conn is not None and self._conn.broken:
                self._conn = None
            raise AuditSinkError(f"audit database: {type(exc).__name__}") from exc
        except ValueError as exc:  # a value psycopg cannot send; rolled back
            raise AuditSinkError(f"audit database: {type(exc).__name__}") from exc

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(_PG_TYPES[t]))
            for n, t in COLUMNS
        )
        name = self._table.as_string(conn).strip('"')
        # CREATE ... IF NOT EXISTS races when several instances start at once
        # on an empty database: one transaction-scoped lock per table name.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (position bigserial PRIMARY KEY, {})"
            ).format(self._table, columns)
        )
        for column, kind in COLUMNS:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    self._table, sql.Identifier(column), sql.SQL(_PG_TYPES[kind])
                )
            )
        conn.execute(
            sql.SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (instance, seq)"
            ).format(sql.Identifier(name + "_chain"), self._table)
        )
        for column in _INDEXED:
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(f"{name}_{column}"),
                    self._table,
                    sql.Identifier(column),
                )
            )

    def _insert(self, conn: psycopg.Connection[Any], records: Sequence[Record]) -> None:
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self._table,
            sql.SQL(", ").join(map(sql.Identifier, COLUMN_NAMES)),
            sql.SQL(", ").join(sql.Placeholder() for _ in COLUMN_NAMES),
        )
        rows = [tuple(record[name] for name in COLUMN_NAMES) for record in records]
        with conn.cursor() as cursor:
            cursor.executemany(statement, rows)

    def append(self, records: Sequence[Record]) -> None:
        with self._lock:
            self._run(self._insert, records)

    def _fetch(
        self, conn: psycopg.Connection[Any], tail: str, values: Sequence[object]
    ) -> list[tuple[Any, ...]]:
        statement = sql.SQL("SELECT position, {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMN_NAMES)), self._table
        ) + sql.SQL(tail)
        return conn.execute(statement, tuple(values)).fetchall()

    def _rows(self, tail: str, values: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._run(self._fetch, tail, values)
        return rows

    def head(self, instance: str) -> Record | None:
        rows = self._rows(
            " WHERE instance = %s AND seq IS NOT NULL ORDER BY position DESC LIMIT 1",
            [instance],
        )
        return _as_record(rows[0][1:]) if rows else None

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Every row in storage order, through a server-side cursor."""
        statement = sql.SQL("SELECT position, {} FROM {} ORDER BY position").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMN_NAMES)), self._table
        )
        try:
            with self._lock:
                conn = self._connection()
                with (
                    conn.transaction(),
                    conn.cursor(name="kaitiaki_audit_scan") as cursor,
                ):
                    cursor.itersize = 5000
                    cursor.execute(statement)
                    for row in cursor:
                        yield f"row {row[0]}", _as_record(row[1:])
        except psycopg.Error as exc:
            raise AuditSinkError(f"audit database: {type(exc).__name__}") from exc

    def search(self, query: Query, limit: int) -> list[Record]:
        where, values = _where(query, "%s")
        rows = self._rows(f"{where} ORDER BY position DESC LIMIT %s", [*values, limit])
        return [_as_record(row[1:]) for row in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
