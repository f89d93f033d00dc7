"""Scope constraints the gateway checks on content: ``_tag`` and ``_security``.

``system/Appointment.crus?_tag=https://.../nz-rheumaticfever-codesystem|rf-nz``
grants its letters only on resources carrying that tag. A search proves it
in the query; a read proves it in the reply (checked on the way back, 404
otherwise, as for a resource that is not there); a create proves it in the
body. Constraints on any other parameter can only be proved by a search.
"""

from __future__ import annotations

from typing import Any

from kaitiaki.fhir.scopes import Scope, covers

__all__ = ["Rule", "content_rules", "satisfies_rules"]

#: A scope's constraint: every (parameter, values) pair must hold.
Rule = tuple[tuple[str, str], ...]

_META = {"_tag": "tag", "_security": "security"}


def content_rules(
    scopes: tuple[Scope, ...], resource_type: str, letters: str
) -> tuple[Rule, ...]:
    """The content-checkable constraints under which ``scopes`` grant ``letters``.

    Empty when an unconstrained scope grants them anyway, or when no
    constrained scope grants all of them by itself.
    """
    if covers(scopes, resource_type, letters):
        return ()
    return tuple(
        scope.constraint
        for scope in scopes
        if scope.constraint
        and scope.reaches(resource_type)
        and set(letters) <= scope.letters
        and all(name in _META for name, _ in scope.constraint)
    )


def _codings(resource: dict[str, Any], name: str) -> list[Any]:
    meta = resource.get("meta")
    codings = meta.get(_META[name]) if isinstance(meta, dict) else None
    return codings if isinstance(codings, list) else []


def _matches(resource: dict[str, Any], name: str, values: str) -> bool:
    for token in values.split(","):
        system, bar, code = token.rpartition("|")
        for coding in _codings(resource, name):
            if not isinstance(coding, dict) or coding.get("code") != code:
                continue
            if not bar or coding.get("system", "") == system:
                return True
    return False


def satisfies_rules(resource: Any, rules: tuple[Rule, ...]) -> bool:
    """True when ``resource`` meets every pair of at least one rule."""
    if not isinstance(resource, dict):
        return False
    return any(
        all(_matches(resource, name, values) for name, values in rule) for rule in rules
    )
