"""FHIR search parameters checked against the definitions the server declares.

The known parameters of a resource type come from HL7's R4 SearchParameter
definitions (or the upstream's CapabilityStatement), plus the operator's
``extra_search_parameters`` for implementation-guide parameters. A name is
understood with its modifier (``family:exact``, ``subject:Patient``,
``code:text``), its chain (``patient.identifier``,
``requester:PractitionerRole.practitioner.identifier``) and ``_has`` reverse
chains. The result parameters (``_count``, ``_sort``, ``_include``, ...) are
checked by value. Anything not understood is refused with 400, naming the
parameter position (``parameter[2]``) rather than echoing an unknown name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kaitiaki.errors import InvalidContent

__all__ = ["SearchDefinitions"]

# name -> (type, targets); "Resource" holds the parameters of every type.
Table = Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]]

_MODIFIERS = {
    "string": frozenset({"exact", "contains", "missing", "text"}),
    "token": frozenset(
        {"text", "not", "above", "below", "in", "not-in", "of-type", "missing"}
    ),
    "reference": frozenset({"identifier", "missing", "above", "below", "text"}),
    "uri": frozenset({"above", "below", "missing", "contains"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "composite": frozenset({"missing"}),
    "special": frozenset({"missing"}),
}
_RESULT_VALUES = {
    "_summary": frozenset({"true", "false", "text", "data", "count"}),
    "_total": frozenset({"none", "estimate", "accurate"}),
    "_contained": frozenset({"true", "false", "both"}),
    "_containedType": frozenset({"container", "contained"}),
    "_pretty": frozenset({"true", "false"}),
}
# Result parameters that mean nothing when repeated: refused if they are.
SINGLE = frozenset({*_RESULT_VALUES, "_count", "_sort", "_elements", "_format"})
_FREE = frozenset({"_format", "_count", "_list"})
_CONTROL = frozenset({*_RESULT_VALUES, "_sort", "_elements"})
_MAX_CHAIN = 4


# Search values by parameter type (FHIR R4 search §3.1.1.4): optional
# prefix, then a (partial) date/dateTime, a number, or number|system|code.
_PREFIX = r"(?:eq|ne|gt|lt|ge|le|sa|eb|ap)?"
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_VALUES = {
    "date": re.compile(
        _PREFIX + r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}"
        r"(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
    ),
    "number": re.compile(_PREFIX + _NUMBER),
    "quantity": re.compile(_PREFIX + _NUMBER + r"(?:\|[^|]*\|[^|]*)?"),
}
_ALTERNATIVES = re.compile(r"(?<!\\),")


def _value_ok(kind: str, value: str) -> bool:
    """Every comma-separated alternative is non-empty and of the type."""
    pattern = _VALUES.get(kind)
    for alternative in _ALTERNATIVES.split(value):
        if not alternative:
            return False
        if pattern is not None and not pattern.fullmatch(alternative):
            return False
    return True


def _refuse(position: int, code: str = "value") -> InvalidContent:
    return InvalidContent(
        "A search parameter is not supported for this resource type.",
        issue_code=code,
        detail="search_parameter",
        expression=f"parameter[{position}]",
    )


@dataclass(frozen=True)
class SearchDefinitions:
    """The search parameters each resource type supports."""

    table: Table
    allow_unknown: bool = False

    @classmethod
    def load_r4(
        cls, extra: Mapping[str, tuple[str, ...]], *, allow_unknown: bool = False
    ) -> SearchDefinitions:
        data = resources.files("kaitiaki.fhir").joinpath(
            "definitions/fhir-r4-search-parameters.json"
        )
        raw: dict[str, dict[str, list[Any]]] = json.loads(data.read_text("utf-8"))
        table: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
            base: {code: (kind, tuple(targets)) for code, (kind, targets) in p.items()}
            for base, p in raw.items()
        }
        resource = table.setdefault("Resource", {})
        resource.update(table.pop("DomainResource", {}))
        for resource_type, names in extra.items():
            for name in names:
                table.setdefault(resource_type, {})[name] = ("special", ())
        return cls(table, allow_unknown)

    @classmethod
    def from_capability(
        cls, statement: Mapping[str, Any], *, allow_unknown: bool = False
    ) -> SearchDefinitions:
        """The parameters an upstream's CapabilityStatement declares."""
        r4 = cls.load_r4({})
        table: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
            "Resource": dict(r4.table["Resource"])
        }
        for rest in statement.get("rest", []):
            for resource in rest.get("resource", []):
                known = r4.table.get(resource["type"], {})
                declared = table.setdefault(resource["type"], {})
                for parameter in resource.get("searchParam", []):
                    name = parameter["name"]
                    default = (str(parameter.get("type", "special")), ())
                    declared[name] = known.get(name, default)
        return cls(table, allow_unknown)

    def parameter(
        self, resource_type: str, name: str
    ) -> tuple[str, tuple[str, ...]] | None:
        found = self.table.get(resource_type, {}).get(name)
        return found or self.table["Resource"].get(name)

    def check(self, resource_type: str, query: tuple[tuple[str, str], ...]) -> None:
        """Refuse a parameter the type does not support, or a bad result value."""
        seen: set[str] = set()
        for position, (name, value) in enumerate(query):
            if name in SINGLE:
                if name in seen:
                    raise _refuse(position, "structure")
                seen.add(name)
            if name in _FREE:
                continue
            if not self.allow_unknown and not self._known(
                resource_type, name, value, 0
            ):
                raise _refuse(position)

    def _known(self, resource_type: str, name: str, value: str, depth: int) -> bool:
        if depth > _MAX_CHAIN:
            return False
        base, _, modifier = name.partition(":")
        if base == "_has":
            return self._has(resource_type, modifier, value, depth)
        if base.startswith("_") and base in _CONTROL:
            return not modifier and self._result(resource_type, base, value)
        if base in ("_include", "_revinclude"):
            return modifier in ("", "iterate") and self._include(value)
        return self._plain(resource_type, name, value, depth)

    def _result(self, resource_type: str, base: str, value: str) -> bool:
        if base in _RESULT_VALUES:
            return value in _RESULT_VALUES[base]
        fields = value.split(",")
        if base == "_sort":
            return all(
                self.parameter(resource_type, field.removeprefix("-")) is not None
                for field in fields
            )
        return all(field.isidentifier() for field in fields)

    def _plain(self, resource_type: str, name: str, value: str, depth: int) -> bool:
        head, dot, rest = name.partition(".")
        base, _, modifier = head.partition(":")
        found = self.parameter(resource_type, base)
        if found is None:
            return False
        kind, targets = found
        if dot:
            chained = self._chain(targets, modifier, rest, value, depth)
            return kind == "reference" and chained
        if not modifier or kind == "special":
            return kind == "special" or _value_ok(kind, value)
        if modifier == "missing":
            return value in ("true", "false")
        if kind == "reference" and modifier in targets:
            return True
        return modifier in _MODIFIERS.get(kind, frozenset())

    def _chain(
        self,
        targets: tuple[str, ...],
        modifier: str,
        rest: str,
        value: str,
        depth: int,
    ) -> bool:
        if modifier:
            if modifier not in targets:
                return False
            targets = (modifier,)
        return any(self._known(target, rest, value, depth + 1) for target in targets)

    def _has(self, resource_type: str, spec: str, value: str, depth: int) -> bool:
        # _has:Observation:patient:code=... ; the last part may chain further.
        other, _, rest = spec.partition(":")
        reference, _, parameter = rest.partition(":")
        found = self.parameter(other, reference) if other in self.table else None
        if found is None or found[0] != "reference" or not parameter:
            return False
        if resource_type not in found[1] and found[1]:
            return False
        return self._known(other, parameter, value, depth + 1)

    def _include(self, value: str) -> bool:
        if value == "*":
            return True
        source, _, rest = value.partition(":")
        parameter, _, target = rest.partition(":")
        found = self.parameter(source, parameter) if source in self.table else None
        if found is None or found[0] != "reference":
            return False
        return not target or target in found[1] or not found[1]
