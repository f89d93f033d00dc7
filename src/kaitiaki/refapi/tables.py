"""The reference API's two tables and its token index.

``refapi_resource`` holds each current resource as JSON text (identifying
fields sealed in ``protected``); ``refapi_token`` holds the searchable
tokens of each (identifiers as keyed blind-index values, patient
references as type and id). :func:`index_tokens` says which tokens a
resource has; :func:`search_conditions` turns a parsed search into SQL
conditions on the two tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    exists,
    or_,
)

from kaitiaki.refapi.protect import FieldProtector
from kaitiaki.refapi.resources import PATIENT_REFERENCE_FIELD
from kaitiaki.refapi.search import SearchQuery, Token

__all__ = [
    "index_tokens",
    "metadata",
    "resource_table",
    "search_conditions",
    "token_table",
]

metadata = MetaData()

resource_table = Table(
    "refapi_resource",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(40), nullable=False),
    Column("content", Text, nullable=False),
    Column("protected", Text, nullable=True),
    Column("key_id", String(128), nullable=True),
)

token_table = Table(
    "refapi_token",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("system", String(1024), nullable=False),
    Column("value", String(1024), nullable=False),
    Column("key_id", String(128), nullable=True),
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


def _token_condition(token: Token, protector: FieldProtector) -> ColumnElement[bool]:
    conditions = [token_table.c.kind == token.kind]
    if token.system is not None:
        conditions.append(token_table.c.system == token.system)
    if token.value is not None and token.kind == "identifier":
        candidates = protector.index_candidates(token.value)
        conditions.append(token_table.c.value.in_(candidates))
    elif token.value is not None:
        conditions.append(token_table.c.value == token.value)
    return and_(*conditions)


def search_conditions(
    query: SearchQuery, protector: FieldProtector
) -> list[ColumnElement[bool]]:
    where = [resource_table.c.resource_type == query.resource_type]
    for ids in query.id_clauses:
        where.append(resource_table.c.id.in_(ids))
    for tokens in query.token_clauses:
        owned = and_(
            token_table.c.resource_type == resource_table.c.resource_type,
            token_table.c.resource_id == resource_table.c.id,
        )
        alternatives = or_(*(_token_condition(t, protector) for t in tokens))
        where.append(exists().where(owned, alternatives))
    return where
