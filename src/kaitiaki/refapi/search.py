"""Parse FHIR search parameters into a query the store can run."""

from __future__ import annotations

from dataclasses import dataclass, field

from kaitiaki.errors import BadRequest
from kaitiaki.refapi.resources import SEARCH_PARAMS, check_id

__all__ = ["DEFAULT_COUNT", "MAX_COUNT", "SearchQuery", "Token", "parse_search"]

DEFAULT_COUNT = 20
MAX_COUNT = 100
_MAX_ALTERNATIVES = 50


@dataclass(frozen=True)
class Token:
    """One indexed token to match; ``None`` in system or value matches any."""

    kind: str
    system: str | None
    value: str | None


@dataclass
class SearchQuery:
    """A search: every clause must hold; within a clause, any alternative."""

    resource_type: str
    count: int = DEFAULT_COUNT
    id_clauses: list[list[str]] = field(default_factory=list)
    token_clauses: list[list[Token]] = field(default_factory=list)


def _alternatives(name: str, value: str) -> list[str]:
    parts = value.split(",")
    if len(parts) > _MAX_ALTERNATIVES or any(not part for part in parts):
        raise BadRequest(
            "A search parameter value is empty or too long.", expression=name
        )
    return parts


def _count(value: str, seen: bool) -> int:
    if seen:
        raise BadRequest("_count may be given only once.", expression="_count")
    if not value.isascii() or not value.isdigit() or int(value) > MAX_COUNT:
        raise BadRequest(
            f"_count must be an integer from 0 to {MAX_COUNT}.", expression="_count"
        )
    return int(value)


def _identifier(value: str) -> Token:
    if "|" not in value:
        return Token("identifier", None, value)
    system, _, code = value.partition("|")
    if "|" in code:
        raise BadRequest("identifier must be system|value.", expression="identifier")
    return Token("identifier", system, code or None)


def _reference(name: str, value: str) -> Token:
    segments = value.rstrip("/").split("/")
    target_type = segments[-2] if len(segments) >= 2 else None
    target_id = segments[-1]
    if name == "patient":
        if target_type not in (None, "Patient"):
            raise BadRequest("patient must reference a Patient.", expression=name)
        target_type = "Patient"
    if not target_id or (target_type is not None and not target_type.isalpha()):
        raise BadRequest("The reference is not Type/id or id.", expression=name)
    try:
        check_id(target_id)
    except BadRequest as exc:
        raise BadRequest(
            "The reference is not Type/id or id.", expression=name
        ) from exc
    return Token("subject", target_type, target_id)


def _tokens(name: str, parts: list[str]) -> list[Token]:
    if name == "identifier":
        return [_identifier(part) for part in parts]
    return [_reference(name, part) for part in parts]


def parse_search(resource_type: str, params: list[tuple[str, str]]) -> SearchQuery:
    """Build a query from ``params``; unknown or malformed parameters are refused."""
    allowed = SEARCH_PARAMS[resource_type]
    query = SearchQuery(resource_type)
    count_seen = False

    for name, value in params:
        if name not in allowed:
            raise BadRequest("The search parameter is not supported.")
        if name == "_count":
            query.count = _count(value, count_seen)
            count_seen = True
            continue

        parts = _alternatives(name, value)
        if name == "_id":
            query.id_clauses.append(parts)
        else:
            query.token_clauses.append(_tokens(name, parts))
    return query
