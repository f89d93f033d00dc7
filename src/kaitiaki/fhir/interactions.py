"""Map a canonical FHIR path and method to the interaction it performs.

Only the interactions listed in :data:`ROUTES` are routed; anything else is
404 (no such route) or 405 (no such method on the route) and never forwarded.
Each routed interaction names the SMART letters it needs; batch/transaction
Bundles and ``$operations`` need none of their own, because their entries
and their operation scopes are authorised instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaitiaki.errors import MethodNotAllowed, NotFound

__all__ = ["INTERACTION_NAMES", "ROUTES", "Interaction", "match_interaction"]

_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_OPERATION = re.compile(r"\$[a-z][A-Za-z0-9\-]{0,63}")
_WELL_KNOWN = re.compile(r"[a-z][a-z0-9\-]{0,63}")
_LITERALS = ("metadata", "_search", "_history", ".well-known")

_SEARCHES = frozenset(
    {"search-type", "search-type-post", "search-system", "search-system-post"}
)
_BODIES = frozenset(
    {"create", "update", "patch", "search-type-post", "search-system-post", "batch"}
)
_SINGLE = frozenset(
    {"read", "vread", "history-instance", "operation-instance", "update", "patch"}
)

# (segment shape, method) -> (interaction, SMART letters). Shapes: T type,
# I id, O $operation, W a .well-known name, literal text otherwise.
ROUTES: dict[tuple[tuple[str, ...], str], tuple[str, str]] = {
    (("metadata",), "GET"): ("capabilities", ""),
    ((".well-known", "W"), "GET"): ("well-known", ""),
    ((), "GET"): ("search-system", "s"),
    ((), "POST"): ("batch", ""),
    (("_search",), "POST"): ("search-system-post", "s"),
    (("_history",), "GET"): ("history-system", "rs"),
    (("O",), "GET"): ("operation-system", ""),
    (("O",), "POST"): ("operation-system", ""),
    (("T",), "GET"): ("search-type", "s"),
    (("T",), "POST"): ("create", "c"),
    (("T", "_search"), "POST"): ("search-type-post", "s"),
    (("T", "_history"), "GET"): ("history-type", "rs"),
    (("T", "O"), "GET"): ("operation-type", ""),
    (("T", "O"), "POST"): ("operation-type", ""),
    (("T", "I"), "GET"): ("read", "r"),
    (("T", "I"), "PUT"): ("update", "u"),
    (("T", "I"), "PATCH"): ("patch", "u"),
    (("T", "I"), "DELETE"): ("delete", "d"),
    (("T", "I", "_history"), "GET"): ("history-instance", "r"),
    (("T", "I", "_history", "I"), "GET"): ("vread", "r"),
    (("T", "I", "O"), "GET"): ("operation-instance", ""),
    (("T", "I", "O"), "POST"): ("operation-instance", ""),
}
_SHAPES = frozenset(shape for shape, _ in ROUTES)
INTERACTION_NAMES = frozenset(name for name, _ in ROUTES.values())


@dataclass(frozen=True, slots=True)
class Interaction:
    """A FHIR interaction: its name, the SMART letters it needs, its route."""

    name: str
    letters: str
    route: str
    resource_type: str | None = None
    resource_id: str | None = None
    operation: str | None = None
    method: str = "GET"

    @property
    def has_body(self) -> bool:
        return self.name in _BODIES or (
            self.operation is not None and self.method == "POST"
        )

    @property
    def is_search(self) -> bool:
        return self.name in _SEARCHES

    @property
    def is_operation(self) -> bool:
        return self.operation is not None

    @property
    def is_single(self) -> bool:
        """True when the interaction targets one resource instance."""
        return self.name in _SINGLE


def _segment_shape(index: int, segment: str, previous: str | None) -> str | None:
    if segment in _LITERALS:
        return segment
    if previous == ".well-known" and _WELL_KNOWN.fullmatch(segment):
        return "W"
    if _OPERATION.fullmatch(segment):
        return "O"
    if index == 0 and _TYPE.fullmatch(segment):
        return "T"
    if index > 0 and _ID.fullmatch(segment):
        return "I"
    return None


def _shape(segments: list[str]) -> tuple[str, ...] | None:
    shape: list[str] = []
    for index, segment in enumerate(segments):
        kind = _segment_shape(index, segment, segments[index - 1] if index else None)
        if kind is None:
            return None
        shape.append(kind)
    return tuple(shape)


def _template(shape: tuple[str, ...], segments: list[str]) -> str:
    names = {"T": "{type}", "I": "{id}", "W": "{name}"}
    parts = [
        names.get(kind, segment) for kind, segment in zip(shape, segments, strict=True)
    ]
    return "/" + "/".join(parts)


def match_interaction(method: str, fhir_path: str) -> Interaction:
    """Classify ``fhir_path`` (the canonical path below the FHIR base)."""
    segments = fhir_path.strip("/").split("/") if fhir_path.strip("/") else []
    shape = _shape(segments)
    if shape is None or shape not in _SHAPES:
        raise NotFound("No route matches the request.", detail="no_route")
    if method == "HEAD":
        method = "GET"
    found = ROUTES.get((shape, method))
    if found is None:
        raise MethodNotAllowed("The method is not allowed on this route.")

    name, letters = found
    resource_type = segments[0] if shape and shape[0] == "T" else None
    resource_id = segments[1] if len(shape) > 1 and shape[1] == "I" else None
    operation = segments[-1][1:] if shape and shape[-1] == "O" else None
    route = _template(shape, segments)
    return Interaction(
        name, letters, route, resource_type, resource_id, operation, method
    )
