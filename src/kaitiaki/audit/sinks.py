"""Audit sinks behind one interface: JSON Lines, stdout, and (in
:mod:`kaitiaki.audit.sqlsinks`) SQLite and PostgreSQL.

``append`` writes a batch all-or-nothing and returns once it is durable (the
file is fsynced, the transaction committed); it raises
:class:`~kaitiaki.errors.AuditSinkError` otherwise. ``scan`` yields records in
storage order with a position label for ``audit verify``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from kaitiaki.audit.events import COLUMN_NAMES, Record
from kaitiaki.errors import AuditSinkError, ConfigError
from kaitiaki.issuer.keys import make_private_dir
from kaitiaki.settings import AuditSettings

__all__ = ["AuditSink", "JsonLinesSink", "Query", "StdoutSink", "open_sink"]

logger = logging.getLogger("kaitiaki.audit.sinks")


@dataclass(frozen=True, slots=True)
class Query:
    """What ``audit search`` looks for; every given field must match."""

    since: str | None = None
    until: str | None = None
    client_id: str | None = None
    outcome: str | None = None
    correlation_id: str | None = None
    patient: str | None = None
    event_type: str | None = None
    instance: str | None = None
    action: str | None = None

    def equalities(self) -> list[tuple[str, str]]:
        names = (
            "client_id",
            "outcome",
            "correlation_id",
            "patient",
            "event_type",
            "instance",
            "action",
        )
        return [(n, getattr(self, n)) for n in names if getattr(self, n) is not None]

    def matches(self, record: Record) -> bool:
        time = str(record.get("time") or "")
        if self.since is not None and time < self.since:
            return False
        if self.until is not None and time >= self.until:
            return False
        return all(record.get(name) == value for name, value in self.equalities())


class AuditSink(Protocol):
    def append(self, records: Sequence[Record]) -> None: ...

    def head(self, instance: str) -> Record | None: ...

    def scan(self) -> Iterator[tuple[str, Record]]: ...

    def search(self, query: Query, limit: int) -> list[Record]: ...

    def close(self) -> None: ...


def _line(record: Record) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True)


class StdoutSink:
    """One JSON line per record on stdout, for container log collectors."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def append(self, records: Sequence[Record]) -> None:
        text = "".join(_line(record) + "\n" for record in records)
        try:
            with self._lock:
                self._stream.write(text)
                self._stream.flush()
        except (OSError, ValueError) as exc:
            raise AuditSinkError(f"stdout audit sink: {type(exc).__name__}") from exc

    def head(self, instance: str) -> Record | None:
        return None

    def scan(self) -> Iterator[tuple[str, Record]]:
        raise ConfigError("audit.sink: stdout events cannot be read back")

    def search(self, query: Query, limit: int) -> list[Record]:
        raise ConfigError("audit.sink: stdout events cannot be read back")

    def close(self) -> None:
        return None


_UNREADABLE: Record = {"instance": "(unreadable)", "event_type": "(unreadable)"}


def _record(line: str) -> Record | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    # Lines of an older release lack the newer columns; unknown ones are refused.
    if not isinstance(data, dict) or not set(data) <= set(COLUMN_NAMES):
        return None
    return {name: data.get(name) for name in COLUMN_NAMES}


class JsonLinesSink:
    """Appends to ``path``; past ``rotate_bytes`` the file becomes ``path.N``
    (N counting up, oldest lowest) and only ``rotate_keep`` of those are kept
    (0: all). One process writes a file."""

    def __init__(
        self,
        path: Path,
        *,
        rotate_bytes: int,
        rotate_keep: int,
        readonly: bool = False,
    ) -> None:
        self._path, self._rotate_bytes, self._keep = path, rotate_bytes, rotate_keep
        self._lock = threading.Lock()
        self._fd = -1
        if readonly:
            return
        make_private_dir(path.parent)
        self._drop_torn_tail()
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _drop_torn_tail(self) -> None:
        """A crash mid-write leaves a partial line that was never committed."""
        if not self._path.exists():
            return
        data = self._path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            os.truncate(self._path, keep)
            logger.warning("audit file %s: dropped a torn final line", self._path)

    def _rotated(self) -> list[Path]:
        found = []
        for item in self._path.parent.glob(self._path.name + ".*"):
            suffix = item.name[len(self._path.name) + 1 :]
            if suffix.isdigit():
                found.append((int(suffix), item))
        return [item for _, item in sorted(found)]

    def _rotate(self) -> None:
        os.close(self._fd)
        rotated = self._rotated()
        number = int(rotated[-1].name.rsplit(".", 1)[1]) + 1 if rotated else 1
        os.replace(self._path, self._path.with_name(f"{self._path.name}.{number}"))
        if self._keep:
            for old in self._rotated()[: -self._keep]:
                old.unlink(missing_ok=True)
        self._fd = self._open()
        _sync_folder(self._path.parent)

    def append(self, records: Sequence[Record]) -> None:
        data = "".join(_line(record) + "\n" for record in records).encode("ascii")
        if self._fd < 0:
            raise AuditSinkError(f"audit file {self._path}: opened read-only")
        try:
            with self._lock:
                size = os.fstat(self._fd).st_size
                if size and size + len(data) > self._rotate_bytes:
                    self._rotate()
                os.write(self._fd, data)
                os.fsync(self._fd)
        except OSError as exc:
            raise AuditSinkError(f"audit file {self._path}: {exc.strerror}") from exc

    def _files(self) -> list[Path]:
        return [*self._rotated(), self._path]

    def scan(self) -> Iterator[tuple[str, Record]]:
        for path in self._files():
            if not path.exists():
                continue
            with path.open(encoding="ascii", errors="replace") as handle:
                for number, line in enumerate(handle, start=1):
                    record = _record(line) or _UNREADABLE
                    yield f"{path.name}:{number}", record

    def head(self, instance: str) -> Record | None:
        for path in reversed(self._files()):
            if not path.exists():
                continue
            lines = path.read_text("ascii", errors="replace").splitlines()
            for line in reversed(lines):
                record = _record(line)
                if record and record["instance"] == instance and record["seq"]:
                    return record
        return None

    def search(self, query: Query, limit: int) -> list[Record]:
        found = [record for _, record in self.scan() if query.matches(record)]
        return found[-limit:]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_sink(settings: AuditSettings, *, readonly: bool = False) -> AuditSink:
    """Open the configured sink, naming the setting when that fails.

    ``readonly`` (verify, search, export) changes nothing: no table or index
    is created, no torn line dropped.
    """
    from kaitiaki.audit.sqlsinks import PostgresSink, SqliteSink

    try:
        if settings.sink == "sqlite":
            return SqliteSink(Path(settings.path), readonly=readonly)
        if settings.sink == "postgresql":
            return PostgresSink(
                str(settings.database_url), settings.table, readonly=readonly
            )
        if settings.sink == "jsonl":
            return JsonLinesSink(
                Path(settings.path),
                rotate_bytes=settings.rotate_bytes,
                rotate_keep=settings.rotate_keep,
                readonly=readonly,
            )
        return StdoutSink()
    except (OSError, AuditSinkError) as exc:
        where = "database_url" if settings.sink == "postgresql" else "path"
        raise ConfigError(f"audit.{where}: cannot open the audit sink: {exc}") from exc
