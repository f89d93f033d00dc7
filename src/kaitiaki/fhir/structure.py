"""FHIR R4 structure validation against HL7's own JSON schema.

The schema is HL7's R4 ``fhir.schema.json`` with the few documented changes
in ``definitions/SOURCE.md`` (32-bit integers, non-empty arrays, Java regex
semantics, ``Extension.url`` required). jsonschema-rs compiles one validator
per resource type on first use, all sharing one registry. Embedded resources
(``contained``, Bundle entries and their outcomes, Parameters resources) are
validated one by one against their own type, so a Bundle is only as valid as
its least valid entry.

A failure names the element (``Patient.name[0].given[0]``) and the kind of
fault (``structure``, ``required``, ``value``), never the value itself, and
never a member name the schema does not know.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema_rs

from kaitiaki.errors import ConfigError, InvalidContent

__all__ = ["FhirDefinitions", "embedded_resources"]

_SCHEMA_URI = "urn:kaitiaki:fhir-r4"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VALUE_KINDS = frozenset(
    {
        "Constant",
        "Enum",
        "Pattern",
        "MinLength",
        "MaxLength",
        "Minimum",
        "Maximum",
        "ExclusiveMinimum",
        "ExclusiveMaximum",
        "Format",
        "MultipleOf",
    }
)
_MESSAGES = {
    "structure": "The resource does not have the structure FHIR R4 defines.",
    "required": "A required element is missing.",
    "value": "An element has a value that FHIR R4 does not allow.",
}


def _segment(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return "." + part if _NAME.fullmatch(part) else ".*"


def _expression(root: str, path: list[str | int], extra: object = None) -> str:
    text = root + "".join(_segment(part) for part in path)
    if isinstance(extra, str) and _NAME.fullmatch(extra):
        return text + "." + extra
    return text


def _issue(error: jsonschema_rs.ValidationError, root: str) -> InvalidContent:
    kind = type(error.kind).__name__
    path = list(error.instance_path)
    if kind == "Required":
        missing = getattr(error.kind, "property", None)
        code, expression = "required", _expression(root, path, missing)
    elif kind in _VALUE_KINDS:
        code, expression = "value", _expression(root, path)
    else:
        code, expression = "structure", _expression(root, path)
    return InvalidContent(
        _MESSAGES[code], issue_code=code, detail=f"fhir_{code}", expression=expression
    )


def embedded_resources(resource: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The resources carried inside ``resource``, with their relative paths.

    These are exactly the elements HL7's schema types as ``ResourceList``
    (tests/fhir/test_structure.py checks the list against the schema).
    """
    for index, child in enumerate(resource.get("contained", [])):
        yield f"contained[{index}]", child
    if resource["resourceType"] == "Bundle":
        for index, entry in enumerate(resource.get("entry", [])):
            if "resource" in entry:
                yield f"entry[{index}].resource", entry["resource"]
            outcome = entry.get("response", {}).get("outcome")
            if outcome is not None:
                yield f"entry[{index}].response.outcome", outcome
    elif resource["resourceType"] == "Parameters":
        yield from _parameter_resources(resource.get("parameter", []), "parameter")


def _parameter_resources(parameters: list[Any], path: str) -> Iterator[tuple[str, Any]]:
    for index, parameter in enumerate(parameters):
        here = f"{path}[{index}]"
        if "resource" in parameter:
            yield here + ".resource", parameter["resource"]
        yield from _parameter_resources(parameter.get("part", []), here + ".part")


class FhirDefinitions:
    """HL7's FHIR R4 definitions, loaded once at start-up."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.resource_types = frozenset(schema["resourceTypes"])
        body = {key: value for key, value in schema.items() if key != "resourceTypes"}
        self._registry = jsonschema_rs.Registry(
            [(_SCHEMA_URI, body)], draft=jsonschema_rs.Draft6
        )
        self._validators: dict[str, jsonschema_rs.Draft6Validator] = {}

    @classmethod
    def load_r4(cls) -> FhirDefinitions:
        """The R4 definitions shipped as package data."""
        data = resources.files("kaitiaki.fhir").joinpath(
            "definitions/fhir-r4.schema.json.gz"
        )
        try:
            return cls(json.loads(gzip.decompress(data.read_bytes())))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError("the packaged FHIR R4 definitions are unusable") from exc

    def _validator(self, resource_type: str) -> jsonschema_rs.Draft6Validator:
        validator = self._validators.get(resource_type)
        if validator is None:
            validator = jsonschema_rs.Draft6Validator(
                {"$ref": f"{_SCHEMA_URI}#/definitions/{resource_type}"},
                registry=self._registry,
            )
            self._validators[resource_type] = validator
        return validator

    def check(self, resource: Any, *, root: str | None = None) -> None:
        """Refuse ``resource`` unless it and every embedded resource is valid."""
        where = root or "Resource"
        if not isinstance(resource, dict):
            raise _not_a_resource(where)
        resource_type = resource.get("resourceType")
        if resource_type not in self.resource_types:
            raise InvalidContent(
                "The resourceType is not a FHIR R4 resource type.",
                issue_code="value" if isinstance(resource_type, str) else "required",
                detail="fhir_resource_type",
                expression=f"{where}.resourceType" if root else "resourceType",
            )
        where = root or str(resource_type)
        for error in self._validator(str(resource_type)).iter_errors(resource):
            raise _issue(error, where)
        for path, child in embedded_resources(resource):
            self.check(child, root=f"{where}.{path}")


def _not_a_resource(where: str) -> InvalidContent:
    return InvalidContent(
        "A FHIR resource must be a JSON object.",
        issue_code="structure",
        detail="fhir_structure",
        expression=where,
    )
