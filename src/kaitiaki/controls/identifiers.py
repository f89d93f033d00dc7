"""NZ identifiers wherever they appear: search parameters and resource bodies.

An identifier whose ``system`` is the NHI, HPI person, organisation or
facility namespace must pass that identifier's check (catalogue §3), unless
the operator allow-lists it (published test fixtures that fail their own
check character). ``_count`` must be one non-negative integer and is capped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kaitiaki.errors import BadRequest
from kaitiaki.nz.identifiers import (
    HPI_FACILITY_SYSTEM,
    HPI_ORGANISATION_SYSTEM,
    HPI_PERSON_SYSTEM,
    NHI_SYSTEM,
    is_valid_cpn,
    is_valid_hpi_facility,
    is_valid_hpi_organisation,
    is_valid_nhi,
)
from kaitiaki.settings import ValidationSettings

__all__ = ["check_resource_identifiers", "check_search"]

_CHECKS: dict[str, Callable[[str], bool]] = {
    NHI_SYSTEM: is_valid_nhi,
    HPI_PERSON_SYSTEM: is_valid_cpn,
    HPI_ORGANISATION_SYSTEM: is_valid_hpi_organisation,
    HPI_FACILITY_SYSTEM: is_valid_hpi_facility,
}
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def _valid(system: str, value: str, settings: ValidationSettings) -> bool:
    check = _CHECKS.get(system)
    if check is None or value.upper() in settings.identifier_allow_list:
        return True
    return check(value)


def _refuse(expression: str) -> BadRequest:
    error = BadRequest(
        "An NZ health identifier is not valid (format or check character).",
        detail="nz_identifier",
        expression=expression,
    )
    error.issue_code = "value"
    return error


def _is_identifier_param(name: str) -> bool:
    # identifier, patient.identifier, subject:Patient.identifier, and the
    # :identifier modifier on references (subject:identifier=system|value).
    return name == "identifier" or name.endswith((".identifier", ":identifier"))


def _check_count(values: list[str], settings: ValidationSettings) -> str | None:
    if not values:
        return None
    if len(values) > 1 or not values[0].isdigit() or len(values[0]) > 6:
        raise BadRequest(
            "_count must be one non-negative integer.",
            detail="count_invalid",
            expression="_count",
        )
    return str(min(int(values[0]), settings.max_count))


def check_search(
    query: tuple[tuple[str, str], ...], settings: ValidationSettings
) -> tuple[tuple[str, str], ...]:
    """Check identifier parameters; return the query with ``_count`` capped."""
    if settings.check_nz_identifiers:
        for name, value in query:
            if not _is_identifier_param(name):
                continue
            for token in _UNESCAPED_COMMA.split(value):
                system, bar, code = token.partition("|")
                if bar and not _valid(system, code, settings):
                    raise _refuse(name)
    count = _check_count([v for n, v in query if n == "_count"], settings)
    if count is None:
        return query
    return tuple((n, count if n == "_count" else v) for n, v in query)


def _identifiers(node: Any, path: list[str], found: list[tuple[str, str, str]]) -> None:
    # Plain recursion (bounded by the JSON depth limit); the path is joined
    # only for an NZ identifier, not for every node.
    if type(node) is dict:
        system = node.get("system")
        if isinstance(system, str) and system in _CHECKS:
            value = node.get("value")
            text = value if isinstance(value, str) else ""
            found.append((system, text, "".join(path) + ".value"))
        items: Any = node.items()
    else:
        items = enumerate(node)
    for key, child in items:
        if type(child) is dict or type(child) is list:
            path.append(f"[{key}]" if type(key) is int else "." + key)
            _identifiers(child, path, found)
            path.pop()


def check_resource_identifiers(
    resource: dict[str, Any], settings: ValidationSettings
) -> None:
    """Every NZ identifier in a resource body must be valid."""
    if not settings.check_nz_identifiers:
        return
    root = str(resource.get("resourceType", "Resource"))
    found: list[tuple[str, str, str]] = []
    _identifiers(resource, [root], found)
    for system, value, path in found:
        if not _valid(system, value, settings):
            raise _refuse(path)
