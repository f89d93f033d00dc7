"""Map a canonical FHIR path and method to the interaction it performs.

Only the interactions listed in :data:`ROUTES` are routed; anything else is
404 and never forwarded. Batch/transaction Bundles, ``$operations`` and
system-wide search are not routed yet, because they need per-entry and
per-operation authorisation first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaitiaki.errors import MethodNotAllowed, NotFound

__all__ = ["Interaction", "match_interaction"]

_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True, slots=True)
class Interaction:
    """A FHIR interaction: its name, the SMART letters it needs, its route."""

    name: str
    letters: str
    route: str
    resource_type: str | None = None
    resource_id: str | None = None

    @property
    def has_body(self) -> bool:
        return self.name in {"create", "update", "search-type-post"}


# (segment shape, method) -> (interaction, SMART letters). Shapes: T type,
# I id, literal text otherwise.
ROUTES: dict[tuple[tuple[str, ...], str], tuple[str, str]] = {
    (("metadata",), "GET"): ("capabilities", ""),
    (("T",), "GET"): ("search-type", "s"),
    (("T",), "POST"): ("create", "c"),
    (("T", "_search"), "POST"): ("search-type-post", "s"),
    (("T", "_history"), "GET"): ("history-type", "rs"),
    (("T", "I"), "GET"): ("read", "r"),
    (("T", "I"), "PUT"): ("update", "u"),
    (("T", "I"), "DELETE"): ("delete", "d"),
    (("T", "I", "_history"), "GET"): ("history-instance", "r"),
    (("T", "I", "_history", "I"), "GET"): ("vread", "r"),
}


def _shape(segments: list[str]) -> tuple[str, ...] | None:
    shape: list[str] = []
    for index, segment in enumerate(segments):
        if segment in ("metadata", "_search", "_history"):
            shape.append(segment)
        elif index == 0 and _TYPE.fullmatch(segment):
            shape.append("T")
        elif index > 0 and _ID.fullmatch(segment):
            shape.append("I")
        else:
            return None
    return tuple(shape)


def match_interaction(method: str, fhir_path: str) -> Interaction:
    """Classify ``fhir_path`` (the canonical path below the FHIR base)."""
    segments = fhir_path.strip("/").split("/") if fhir_path.strip("/") else []
    shape = _shape(segments)
    if shape is None or not any(key[0] == shape for key in ROUTES):
        raise NotFound("No route matches the request.", detail="no_route")
    if method == "HEAD":
        method = "GET"
    found = ROUTES.get((shape, method))
    if found is None:
        raise MethodNotAllowed("The method is not allowed on this route.")

    name, letters = found
    route = "/" + "/".join(
        "{type}" if s == "T" else "{id}" if s == "I" else s for s in shape
    )
    resource_type = segments[0] if shape and shape[0] == "T" else None
    resource_id = segments[1] if len(shape) > 1 and shape[1] == "I" else None
    return Interaction(name, letters, route, resource_type, resource_id)
