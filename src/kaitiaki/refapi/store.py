"""Current FHIR resources as JSON text, plus a token index, in one SQL database
(the tables: :mod:`kaitiaki.refapi.tables`).

Every write updates the resource row and its index rows in one transaction.
Patient-identifying fields are sealed in ``protected`` and identifier values
are indexed as keyed blind-index values (:mod:`kaitiaki.refapi.protect`);
``key_id`` records the key each row was protected with. The calls here are
blocking; the web layer runs them in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)

from kaitiaki.refapi.protect import FieldProtector
from kaitiaki.refapi.search import SearchQuery, Token
from kaitiaki.refapi.tables import (
    index_tokens,
    metadata,
    resource_table,
    search_conditions,
    token_table,
)

__all__ = ["ResourceStore", "StoreTransaction", "index_tokens"]


class StoreTransaction:
    """The store's calls inside one open transaction: all commit or none."""

    def __init__(self, store: ResourceStore, conn: Connection) -> None:
        self._store, self._conn = store, conn

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self._store._read_on(self._conn, resource_type, resource_id)

    def search(self, query: SearchQuery) -> tuple[int, list[dict[str, Any]]]:
        return self._store._search_on(self._conn, query)

    def write(
        self, resource_type: str, resource: dict[str, Any], now: str
    ) -> tuple[dict[str, Any], bool]:
        return self._store._write_on(self._conn, resource_type, resource, now)

    def delete(self, resource_type: str, resource_id: str) -> None:
        _delete_on(self._conn, resource_type, resource_id)


class ResourceStore:
    """Read, search and write resources through one SQLAlchemy engine."""

    def __init__(self, engine: Engine, protector: FieldProtector) -> None:
        self._engine = engine
        self._protector = protector

    def create_tables(self) -> None:
        """Create the tables and indexes that do not exist yet, and add the
        protection columns to tables made before they existed."""
        metadata.create_all(self._engine)
        _add_missing_columns(self._engine)

    def is_empty(self) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(select(resource_table.c.id).limit(1)).first() is None

    def _opened(self, resource_type: str, content: str, sealed: str | None) -> Any:
        return self._protector.join(resource_type, _loads(content), sealed)

    @contextmanager
    def begin(self) -> Iterator[StoreTransaction]:
        """One database transaction for several calls (transaction Bundles)."""
        self._protector.refresh()
        with self._engine.begin() as conn:
            yield StoreTransaction(self, conn)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        self._protector.refresh()
        with self._engine.connect() as conn:
            return self._read_on(conn, resource_type, resource_id)

    def search(self, query: SearchQuery) -> tuple[int, list[dict[str, Any]]]:
        """The total number of matches and the first ``query.count`` of them."""
        self._protector.refresh()
        with self._engine.connect() as conn:
            return self._search_on(conn, query)

    def _read_on(
        self, conn: Connection, resource_type: str, resource_id: str
    ) -> dict[str, Any] | None:
        statement = select(resource_table.c.content, resource_table.c.protected).where(
            resource_table.c.resource_type == resource_type,
            resource_table.c.id == resource_id,
        )
        row = conn.execute(statement).first()
        return None if row is None else self._opened(resource_type, *row)

    def _search_on(
        self, conn: Connection, query: SearchQuery
    ) -> tuple[int, list[dict[str, Any]]]:
        where = search_conditions(query, self._protector)
        count = select(func.count()).select_from(resource_table).where(*where)
        page = (
            select(resource_table.c.content, resource_table.c.protected)
            .where(*where)
            .order_by(resource_table.c.id)
            .limit(query.count)
        )
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(page).all() if query.count else []
        return total, [self._opened(query.resource_type, *row) for row in rows]

    def _write_on(
        self, conn: Connection, resource_type: str, resource: dict[str, Any], now: str
    ) -> tuple[dict[str, Any], bool]:
        version = self._current_version(conn, resource_type, resource["id"])
        stored = _stamped(resource, (version or 0) + 1, now)
        self._put(conn, resource_type, stored, exists=version is not None)
        return stored, version is None

    def write(
        self, resource_type: str, resource: dict[str, Any], now: str
    ) -> tuple[dict[str, Any], bool]:
        """Store ``resource`` under its ``id`` as the next version.

        Returns the stored resource and whether it was created.
        """
        self._protector.refresh()
        with self._engine.begin() as conn:
            return self._write_on(conn, resource_type, resource, now)

    def delete(self, resource_type: str, resource_id: str) -> None:
        with self._engine.begin() as conn:
            _delete_on(conn, resource_type, resource_id)

    def load(self, resources: Iterable[dict[str, Any]], now: str) -> None:
        """Insert new resources (version 1) in one transaction, as seeding does."""
        with self._engine.begin() as conn:
            for resource in resources:
                stored = _stamped(resource, 1, now)
                self._put(conn, resource["resourceType"], stored, exists=False)

    @staticmethod
    def _current_version(
        conn: Connection, resource_type: str, resource_id: str
    ) -> int | None:
        statement = (
            select(resource_table.c.version)
            .where(
                resource_table.c.resource_type == resource_type,
                resource_table.c.id == resource_id,
            )
            .with_for_update()
        )
        version = conn.execute(statement).scalar_one_or_none()
        return None if version is None else int(version)

    def reprotect(self, batch: int = 500) -> int:
        """Re-seal and re-index rows whose keys are not the current ones.

        Runs in batches of ``batch`` rows, one transaction each; rows written
        before protection existed (``key_id`` empty) are protected too.
        """
        self._protector.refresh()
        done = 0
        while True:
            with self._engine.begin() as conn:
                stale = conn.execute(_stale_rows(self._protector).limit(batch)).all()
                for resource_type, content, sealed in stale:
                    resource = self._opened(resource_type, content, sealed)
                    self._put(conn, resource_type, resource, exists=True)
            done += len(stale)
            if len(stale) < batch:
                return done

    def _put(
        self,
        conn: Connection,
        resource_type: str,
        stored: dict[str, Any],
        *,
        exists: bool,
    ) -> None:
        resource_id = stored["id"]
        clear, sealed = self._protector.split(resource_type, stored)
        values = {
            "version": int(stored["meta"]["versionId"]),
            "last_updated": stored["meta"]["lastUpdated"],
            "content": json.dumps(clear, ensure_ascii=False, separators=(",", ":")),
            "protected": sealed,
            "key_id": self._protector.data_kid,
        }
        if exists:
            conn.execute(
                update(resource_table)
                .where(
                    resource_table.c.resource_type == resource_type,
                    resource_table.c.id == resource_id,
                )
                .values(**values)
            )
            _delete_tokens(conn, resource_type, resource_id)
        else:
            conn.execute(
                insert(resource_table).values(
                    resource_type=resource_type, id=resource_id, **values
                )
            )
        rows = [
            self._token_row(resource_type, resource_id, token)
            for token in index_tokens(resource_type, stored)
        ]
        if rows:
            conn.execute(insert(token_table), rows)

    def _token_row(
        self, resource_type: str, resource_id: str, token: Token
    ) -> dict[str, str | None]:
        value, key_id = token.value or "", None
        if token.kind == "identifier":
            value, key_id = (
                self._protector.index_value(value),
                self._protector.index_kid,
            )
        return {
            "resource_type": resource_type,
            "resource_id": resource_id,
            "kind": token.kind,
            "system": token.system or "",
            "value": value,
            "key_id": key_id,
        }


def _stale_rows(protector: FieldProtector) -> Any:
    stale_tokens = exists().where(
        token_table.c.resource_type == resource_table.c.resource_type,
        token_table.c.resource_id == resource_table.c.id,
        token_table.c.kind == "identifier",
        or_(
            token_table.c.key_id.is_(None),
            token_table.c.key_id != protector.index_kid,
        ),
    )
    return (
        select(
            resource_table.c.resource_type,
            resource_table.c.content,
            resource_table.c.protected,
        )
        .where(
            or_(
                resource_table.c.key_id.is_(None),
                resource_table.c.key_id != protector.data_kid,
                stale_tokens,
            )
        )
        .order_by(resource_table.c.resource_type, resource_table.c.id)
    )


def _add_missing_columns(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in (resource_table, token_table):
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(engine.dialect)
            with engine.begin() as conn:
                conn.execute(
                    text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                )


def _delete_on(conn: Connection, resource_type: str, resource_id: str) -> None:
    _delete_tokens(conn, resource_type, resource_id)
    conn.execute(
        delete(resource_table).where(
            resource_table.c.resource_type == resource_type,
            resource_table.c.id == resource_id,
        )
    )


def _delete_tokens(conn: Connection, resource_type: str, resource_id: str) -> None:
    conn.execute(
        delete(token_table).where(
            token_table.c.resource_type == resource_type,
            token_table.c.resource_id == resource_id,
        )
    )


def _stamped(resource: dict[str, Any], version: int, now: str) -> dict[str, Any]:
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta.update(versionId=str(version), lastUpdated=now)
    return {**resource, "meta": meta}


def _loads(content: str) -> dict[str, Any]:
    # Only this module writes the column, always from a JSON object.
    return cast(dict[str, Any], json.loads(content))
