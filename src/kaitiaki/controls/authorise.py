"""Request-level authorisation: do the token's scopes cover this interaction?

Beyond the interaction's own type, a search reaches other types through
``_include``, ``_revinclude``, ``_has`` and chained parameters; each of those
needs search-and-read scope on the type it reaches. When the reached type
cannot be known from the request (a chain or include without a target type),
only a wildcard scope covers it. A refusal never says whether data exists.
"""

from __future__ import annotations

import re

from kaitiaki.errors import Forbidden, InsufficientScope
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.fhir.scopes import Scope, covers
from kaitiaki.request import CanonicalRequest

__all__ = ["authorise"]

_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_WILDCARD = "*"


def _include_targets(name: str, value: str) -> set[str]:
    # _include=Source:param[:Target]; _revinclude reaches Source.
    parts = value.split(":")
    if parts[0] == "*" or len(parts) < 2:
        return {_WILDCARD}
    if name.startswith("_revinclude"):
        return {parts[0]}
    return {parts[2]} if len(parts) > 2 and _TYPE.fullmatch(parts[2]) else {_WILDCARD}


def _chain_targets(name: str) -> set[str]:
    if name.startswith("_has:"):
        parts = name.split(":")
        return (
            {parts[1]} if len(parts) > 1 and _TYPE.fullmatch(parts[1]) else {_WILDCARD}
        )
    first = name.split(".", 1)[0]
    modifier = first.partition(":")[2]
    return {modifier} if _TYPE.fullmatch(modifier) else {_WILDCARD}


def reached_types(request: CanonicalRequest) -> set[str]:
    """Resource types a search reaches besides its own."""
    reached: set[str] = set()
    for name, value in request.query:
        if name.startswith(("_include", "_revinclude")):
            for item in value.split(","):
                reached |= _include_targets(name, item)
        elif name.startswith("_has:") or "." in name:
            reached |= _chain_targets(name)
    return reached


def authorise(
    scopes: tuple[Scope, ...], interaction: Interaction, request: CanonicalRequest
) -> None:
    """Raise :class:`InsufficientScope` unless ``scopes`` cover the request."""
    if interaction.resource_type is None:
        raise Forbidden("The request is not permitted.", detail="system_level")
    if not covers(scopes, interaction.resource_type, interaction.letters):
        raise InsufficientScope(
            "The access token does not permit this request.", detail="scope_type"
        )
    if interaction.name.startswith("search"):
        for resource_type in reached_types(request):
            if not covers(scopes, resource_type, "rs"):
                raise InsufficientScope(
                    "The access token does not permit this request.",
                    detail="scope_reached_type",
                )
