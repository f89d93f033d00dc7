"""SMART App Launch scopes (v2 ``c r u d s`` and v1 ``read``/``write``).

A scope grants letters on a resource type (or ``*``) in a context. This
module is the whole decision: does a set of granted scopes cover the letters
an interaction needs on a type? Scopes this version cannot enforce safely are
parsed but grant nothing (fail closed): ``patient/`` scopes, whose compartment
rule needs the patient compartment definitions, and scopes narrowed by a
search-parameter constraint (``?category=...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Scope", "covers", "parse_scopes"]

_SCOPE = re.compile(
    r"(?:(?P<prefix>https?://[^\s]+?)/)?(?P<context>patient|user|system)/"
    r"(?P<type>\*|[A-Z][A-Za-z]{1,63})\.(?P<perm>\*|read|write|c?r?u?d?s?)"
    r"(?:\?(?P<constraint>\S+))?"
)
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True, slots=True)
class Scope:
    context: str
    resource_type: str
    letters: frozenset[str]
    constraint: str | None = None

    @property
    def enforceable(self) -> bool:
        return self.context in ("system", "user") and self.constraint is None


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """Parse a space-separated scope string; unknown scopes are ignored."""
    scopes = []
    for item in text.split():
        match = _SCOPE.fullmatch(item)
        if match is None or not match.group("perm"):
            continue
        perm = match.group("perm")
        letters = frozenset(_V1.get(perm, perm))
        scopes.append(
            Scope(
                match.group("context"),
                match.group("type"),
                letters,
                match.group("constraint"),
            )
        )
    return tuple(scopes)


def covers(scopes: tuple[Scope, ...], resource_type: str, letters: str) -> bool:
    """True when every letter needed on ``resource_type`` is granted.

    Letters may come from different scopes (``.r`` and ``.s`` together grant
    ``rs``), but only from scopes this version can enforce.
    """
    granted: set[str] = set()
    for scope in scopes:
        if scope.enforceable and scope.resource_type in ("*", resource_type):
            granted |= scope.letters
    return set(letters) <= granted


def covers_all_types(scopes: tuple[Scope, ...], letters: str) -> bool:
    """True when a wildcard scope grants ``letters`` on every resource type."""
    return covers(scopes, "*", letters) and any(
        scope.enforceable and scope.resource_type == "*" for scope in scopes
    )
