"""SMART App Launch scopes (v2 ``c r u d s``, v1 ``read``/``write``) and their grants.

A resource scope grants letters on a resource type (or ``*``) in a context:
``system/`` and ``user/`` grant them on any resource the letters reach,
``patient/`` only inside the token's patient compartment (the caller decides
what that means for a request). A scope may be narrowed by search-parameter
constraints (``system/Observation.rs?category=laboratory``); it then grants its
letters only to a request that carries exactly those parameter values.
Health NZ variants are understood too: a URL prefix before the context
(``https://api.hip.digital.health.nz/fhir/system/Patient.r``) and operation
scopes that are an OperationDefinition's canonical URL. Anything else in the
scope string (``openid``, ``sdhr-bulk-post``) grants no FHIR access; such raw
scopes can still be required by a route policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Grants", "Scope", "covers", "parse_scopes"]

_SCOPE = re.compile(
    r"(?:(?P<prefix>https?://[^\s?#]+?)/)?(?P<context>patient|user|system)/"
    r"(?P<type>\*|[A-Z][A-Za-z]{1,63})\.(?P<perm>\*|read|write|c?r?u?d?s?)"
    r"(?:\?(?P<constraint>[^\s#]+))?"
)
_OPERATION = re.compile(r"https?://[^\s?#]+/OperationDefinition/[A-Za-z0-9\-.]{1,64}")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:]{0,63}")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}

#: A predicate the caller supplies: does the request satisfy this constraint?
Satisfies = Callable[[tuple[tuple[str, str], ...]], bool]


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: context, type (or ``*``), letters, constraints."""

    context: str
    resource_type: str
    letters: frozenset[str]
    constraint: tuple[tuple[str, str], ...] = ()

    def reaches(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)


def _constraint(text: str | None) -> tuple[tuple[str, str], ...] | None:
    """``a=x&b=y`` as pairs; None when malformed (the scope then grants nothing)."""
    if text is None:
        return ()
    pairs = []
    for item in text.split("&"):
        name, equals, value = item.partition("=")
        if not equals or not value or not _PARAM_NAME.fullmatch(name):
            return None
        pairs.append((name, value))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Grants:
    """Everything a token's scope string grants."""

    scopes: tuple[Scope, ...]
    operations: frozenset[str]
    raw: frozenset[str]

    def in_context(self, *contexts: str) -> tuple[Scope, ...]:
        return tuple(scope for scope in self.scopes if scope.context in contexts)

    def readable_types(self) -> frozenset[str]:
        """Types (or ``*``) that unconstrained ``system/``/``user/`` scopes may read."""
        return frozenset(
            scope.resource_type
            for scope in self.in_context("system", "user")
            if "r" in scope.letters and not scope.constraint
        )

    @property
    def has_patient_scopes(self) -> bool:
        return bool(self.in_context("patient"))

    @property
    def has_unconfined_scopes(self) -> bool:
        return bool(self.in_context("system", "user"))


def parse_scopes(text: str, *, prefixes: tuple[str, ...] = ()) -> Grants:
    """Parse a space-separated scope string; unknown items grant nothing.

    A URL-prefixed scope grants only when its prefix is one of ``prefixes``
    (the API's own base URL and any the operator names): a scope meant for
    another API behind the same issuer grants nothing here.
    """
    allowed = {prefix.rstrip("/") for prefix in prefixes}
    scopes: list[Scope] = []
    operations: set[str] = set()
    items = text.split()
    for item in items:
        if _OPERATION.fullmatch(item):
            operations.add(item)
            continue
        match = _SCOPE.fullmatch(item)
        if match is None or not match.group("perm"):
            continue
        prefix = match.group("prefix")
        if prefix is not None and prefix not in allowed:
            continue
        constraint = _constraint(match.group("constraint"))
        if constraint is None:
            continue
        perm = match.group("perm")
        scopes.append(
            Scope(
                match.group("context"),
                match.group("type"),
                frozenset(_V1.get(perm, perm)),
                constraint,
            )
        )
    return Grants(tuple(scopes), frozenset(operations), frozenset(items))


def covers(
    scopes: tuple[Scope, ...],
    resource_type: str,
    letters: str,
    satisfies: Satisfies | None = None,
) -> bool:
    """True when every letter needed on ``resource_type`` is granted.

    Letters may come from different scopes (``.r`` and ``.s`` together grant
    ``rs``). A constrained scope counts only when ``satisfies`` says the
    request meets its constraint; without a predicate it never counts.
    """
    granted: set[str] = set()
    for scope in scopes:
        if not scope.reaches(resource_type):
            continue
        if scope.constraint and (satisfies is None or not satisfies(scope.constraint)):
            continue
        granted |= scope.letters
    return set(letters) <= granted


def covers_all_types(scopes: tuple[Scope, ...], letters: str) -> bool:
    """True when an unconstrained wildcard scope grants ``letters`` on every type."""
    wildcard = tuple(s for s in scopes if s.resource_type == "*" and not s.constraint)
    return covers(wildcard, "*", letters)
