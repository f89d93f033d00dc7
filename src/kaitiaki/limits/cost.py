"""Which route group a request falls in, and what it costs.

A plain read, search or write costs one unit; an operation such as
``$validate`` costs more, and ``$everything`` and ``$export`` (the bulk
group) most. A search grows dearer with every ``_include``/``_revinclude``,
every chained or ``_has`` parameter, and every ``count_unit`` results it
asks for beyond the first page; a Bundle body with every entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kaitiaki.limits.config import CostSettings, RouteGroup

__all__ = ["bundle_entries", "request_cost", "route_group"]

BULK_OPERATIONS = frozenset({"$everything", "$export"})

_GROUPS: dict[str, RouteGroup] = {
    "capabilities": "public",
    "read": "read",
    "vread": "read",
    "history-instance": "read",
    "search-type": "search",
    "search-type-post": "search",
    "search-system": "search",
    "history-type": "search",
    "history-system": "search",
    "create": "write",
    "update": "write",
    "patch": "write",
    "delete": "write",
    "batch": "write",
    "transaction": "write",
}


def route_group(interaction: str | None, path: str) -> RouteGroup:
    """The group of a routed interaction; ``$operations`` by their name.

    Anything not known is an ``operation``: dearer than a read, never free.
    """
    for segment in reversed(path.split("/")):
        if segment.startswith("$"):
            return "bulk" if segment in BULK_OPERATIONS else "operation"
    if interaction is None:
        return "operation"
    return _GROUPS.get(interaction, "operation")


def _search_extra(query: Iterable[tuple[str, str]], costs: CostSettings) -> int:
    extra = 0
    for name, value in query:
        if name.startswith(("_include", "_revinclude")):
            extra += costs.include
        elif name.startswith("_has:") or "." in name:
            extra += costs.chain
        elif name == "_count" and value.isdigit():
            extra += max(0, -(-int(value) // costs.count_unit) - 1)
    return extra


def request_cost(
    group: RouteGroup,
    query: Iterable[tuple[str, str]],
    costs: CostSettings,
    *,
    entries: int = 0,
) -> int:
    """Units a request costs: its group's base, plus search and Bundle extras."""
    cost = costs.base(group) + entries * costs.entry
    if group in ("search", "bulk", "operation"):
        cost += _search_extra(query, costs)
    return cost


def bundle_entries(resource: Mapping[str, Any] | None) -> int:
    """How many entries a Bundle body carries (0 for anything else)."""
    if not resource or resource.get("resourceType") != "Bundle":
        return 0
    entry = resource.get("entry")
    return len(entry) if isinstance(entry, list) else 0
