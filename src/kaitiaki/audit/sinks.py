"""Audit sinks: SQLite (embedded default), JSON Lines file, stdout.

Writes are synchronous and committed before the response is sent (the
``strict`` durability of the standard's logging requirement); callers run
them in a worker thread. A sink that fails raises, and the gateway refuses
with 503 rather than serve unaudited.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Protocol

from kaitiaki.audit.events import AuditEvent
from kaitiaki.errors import ConfigError
from kaitiaki.settings import AuditSettings

__all__ = ["AuditSink", "open_sink", "read_events"]

Record = dict[str, str | int | float | None]


class AuditSink(Protocol):
    def write(self, event: AuditEvent) -> None: ...

    def close(self) -> None: ...


def _columns() -> str:
    names = AuditEvent.field_names()
    return ", ".join(f'"{name}"' for name in names)


class SqliteSink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS audit_event "
            "(position INTEGER PRIMARY KEY AUTOINCREMENT, " + _columns() + ")"
        )
        os.chmod(path, 0o600)

    def write(self, event: AuditEvent) -> None:
        record = event.to_record()
        marks = ", ".join("?" for _ in record)
        with self._lock:
            self._db.execute(
                f"INSERT INTO audit_event ({_columns()}) VALUES ({marks})",  # noqa: S608
                tuple(record.values()),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class JsonLinesSink:
    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        if path is None:
            self._file = sys.stdout
            self._owned = False
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")
        self._owned = True

    def write(self, event: AuditEvent) -> None:
        line = json.dumps(event.to_record(), separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self._owned:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._owned:
            self._file.close()


def open_sink(settings: AuditSettings) -> AuditSink:
    """Open the configured sink, naming the setting when that fails."""
    try:
        if settings.sink == "sqlite":
            return SqliteSink(Path(settings.path))
        if settings.sink == "jsonl":
            return JsonLinesSink(Path(settings.path))
        return JsonLinesSink(None)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"audit.path: cannot open {settings.path}: {exc}") from exc


def read_events(settings: AuditSettings, *, limit: int = 50) -> list[Record]:
    """The latest ``limit`` events of a SQLite or JSON Lines sink, oldest first."""
    path = Path(settings.path)
    if settings.sink == "stdout":
        raise ConfigError("audit.sink: stdout events cannot be read back")
    if not path.exists():
        return []
    if settings.sink == "jsonl":
        lines = path.read_text("utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in lines]
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM audit_event ORDER BY position DESC LIMIT ?", (limit,)
        ).fetchall()
    return [dict(row) for row in reversed(rows)]
