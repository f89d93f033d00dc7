"""Current FHIR resources as JSON text, plus a token index, in one SQL database.

Every write updates the resource row and its index rows in one transaction.
The calls here are blocking; the web layer runs them in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from kaitiaki.refapi.resources import PATIENT_REFERENCE_FIELD
from kaitiaki.refapi.search import SearchQuery, Token

__all__ = [
    "ResourceStore",
    "delete_in",
    "index_tokens",
    "read_in",
    "search_in",
    "write_in",
]

_metadata = MetaData()

resource_table = Table(
    "refapi_resource",
    _metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(40), nullable=False),
    Column("content", Text, nullable=False),
)

token_table = Table(
    "refapi_token",
    _metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("system", String(1024), nullable=False),
    Column("value", String(1024), nullable=False),
    Index("ix_refapi_token_lookup", "resource_type", "kind", "value"),
    Index("ix_refapi_token_owner", "resource_type", "resource_id"),
)

_MAX_TOKEN_TEXT = 1024


def _identifier_tokens(resource: dict[str, Any]) -> Iterator[Token]:
    identifiers = resource.get("identifier")
    if not isinstance(identifiers, list):
        return
    for identifier in identifiers:
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system", ""), identifier.get("value")
        if isinstance(system, str) and isinstance(value, str):
            yield Token("identifier", system, value)


def _reference_token(resource: dict[str, Any], element: str) -> Token | None:
    target = resource.get(element)
    reference = target.get("reference") if isinstance(target, dict) else None
    if not isinstance(reference, str):
        return None
    segments = reference.rstrip("/").split("/")
    if len(segments) < 2 or not segments[-1]:
        return None
    return Token("subject", segments[-2], segments[-1])


def index_tokens(resource_type: str, resource: dict[str, Any]) -> list[Token]:
    """The searchable tokens of ``resource``; malformed elements are skipped."""
    tokens = list(_identifier_tokens(resource))
    element = PATIENT_REFERENCE_FIELD.get(resource_type)
    if element is not None:
        reference = _reference_token(resource, element)
        if reference is not None:
            tokens.append(reference)
    return [
        token
        for token in tokens
        if len(token.system or "") <= _MAX_TOKEN_TEXT
        and len(token.value or "") <= _MAX_TOKEN_TEXT
    ]


def _token_condition(token: Token) -> ColumnElement[bool]:
    conditions = [token_table.c.kind == token.kind]
    if token.system is not None:
        conditions.append(token_table.c.system == token.system)
    if token.value is not None:
        conditions.append(token_table.c.value == token.value)
    return and_(*conditions)


def _where(query: SearchQuery) -> list[ColumnElement[bool]]:
    where = [resource_table.c.resource_type == query.resource_type]
    for ids in query.id_clauses:
        where.append(resource_table.c.id.in_(ids))
    for tokens in query.token_clauses:
        owned = and_(
            token_table.c.resource_type == resource_table.c.resource_type,
            token_table.c.resource_id == resource_table.c.id,
        )
        alternatives = or_(*(_token_condition(token) for token in tokens))
        where.append(exists().where(owned, alternatives))
    return where


class ResourceStore:
    """Read, search and write resources through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_tables(self) -> None:
        """Create the tables and indexes that do not exist yet."""
        _metadata.create_all(self._engine)

    def is_empty(self) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(select(resource_table.c.id).limit(1)).first() is None

    def begin(self) -> AbstractContextManager[Connection]:
        """One transaction; the ``*_in`` functions run inside it."""
        return self._engine.begin()

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            return read_in(conn, resource_type, resource_id)

    def search(self, query: SearchQuery) -> tuple[int, list[dict[str, Any]]]:
        """The total number of matches and the first ``query.count`` of them."""
        with self._engine.connect() as conn:
            return search_in(conn, query)

    def write(
        self, resource_type: str, resource: dict[str, Any], now: str
    ) -> tuple[dict[str, Any], bool]:
        """Store ``resource`` under its ``id`` as the next version.

        Returns the stored resource and whether it was created.
        """
        with self._engine.begin() as conn:
            return write_in(conn, resource_type, resource, now)

    def delete(self, resource_type: str, resource_id: str) -> None:
        with self._engine.begin() as conn:
            delete_in(conn, resource_type, resource_id)

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

    @staticmethod
    def _put(
        conn: Connection, resource_type: str, stored: dict[str, Any], *, exists: bool
    ) -> None:
        resource_id = stored["id"]
        values = {
            "version": int(stored["meta"]["versionId"]),
            "last_updated": stored["meta"]["lastUpdated"],
            "content": json.dumps(stored, ensure_ascii=False, separators=(",", ":")),
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
            {
                "resource_type": resource_type,
                "resource_id": resource_id,
                "kind": token.kind,
                "system": token.system or "",
                "value": token.value or "",
            }
            for token in index_tokens(resource_type, stored)
        ]
        if rows:
            conn.execute(insert(token_table), rows)


def read_in(
    conn: Connection, resource_type: str, resource_id: str
) -> dict[str, Any] | None:
    statement = select(resource_table.c.content).where(
        resource_table.c.resource_type == resource_type,
        resource_table.c.id == resource_id,
    )
    content = conn.execute(statement).scalar_one_or_none()
    return None if content is None else _loads(content)


def search_in(conn: Connection, query: SearchQuery) -> tuple[int, list[dict[str, Any]]]:
    where = _where(query)
    count = select(func.count()).select_from(resource_table).where(*where)
    page = (
        select(resource_table.c.content)
        .where(*where)
        .order_by(resource_table.c.id)
        .limit(query.count)
    )
    total = int(conn.execute(count).scalar_one())
    rows = conn.execute(page).scalars().all() if query.count else []
    return total, [_loads(content) for content in rows]


def write_in(
    conn: Connection, resource_type: str, resource: dict[str, Any], now: str
) -> tuple[dict[str, Any], bool]:
    version = ResourceStore._current_version(conn, resource_type, resource["id"])
    stored = _stamped(resource, (version or 0) + 1, now)
    ResourceStore._put(conn, resource_type, stored, exists=version is not None)
    return stored, version is None


def delete_in(conn: Connection, resource_type: str, resource_id: str) -> None:
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
