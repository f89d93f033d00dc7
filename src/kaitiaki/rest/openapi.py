"""Validate requests on a REST route against the operator's OpenAPI document.

The document (3.0 or 3.1, JSON or YAML) is checked once at start-up with
openapi-spec-validator; every schema in it is then compiled by jsonschema-rs
from one registry, so ``$ref`` works as the document wrote it. A request is
matched to one operation (path template, then method) and its path, query
and header parameters and JSON body are validated. Query parameters the
operation does not declare are refused unless the route allows them or the
operation says ``x-kaitiaki-allow-unknown-query: true``. Integers with no
bounds get the interoperable range ±(2^53 - 1), or int32/int64 by ``format``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import yaml
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from kaitiaki.errors import (
    BadRequest,
    ConfigError,
    InvalidContent,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from kaitiaki.strictjson import JsonLimits, StrictJSONError, loads_strict

__all__ = ["OpenApiDocument", "Operation"]

_URI = "urn:kaitiaki:openapi"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_SAFE_INT = 2**53 - 1
_FORMAT_RANGES = {"int32": 2**31 - 1, "int64": 2**63 - 1}
_TEMPLATE = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")


def _pointer(*parts: str | int) -> str:
    return (
        _URI
        + "#/"
        + "/".join(
            quote(str(part).replace("~", "~0").replace("/", "~1"), safe="~")
            for part in parts
        )
    )


def _bound_integers(node: Any, nullable_keyword: bool) -> None:
    """Give unbounded integers a safe range; turn 3.0 ``nullable`` into types."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
            limit = _FORMAT_RANGES.get(str(node.get("format")), _SAFE_INT)
            node.setdefault("maximum", min(limit, _SAFE_INT))
            node.setdefault("minimum", -min(limit + 1, _SAFE_INT))
        if nullable_keyword and node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        for value in node.values():
            _bound_integers(value, nullable_keyword)
    elif isinstance(node, list):
        for value in node:
            _bound_integers(value, nullable_keyword)


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str
    required: bool
    kind: str
    validator: jsonschema_rs.Validator | None


@dataclass(frozen=True)
class Operation:
    """One operation of the document, with compiled validators."""

    template: str
    method: str
    parameters: tuple[Parameter, ...]
    body: Mapping[str, jsonschema_rs.Validator]
    body_required: bool
    allow_unknown_query: bool
    scopes: tuple[frozenset[str], ...] = field(default=())

    def header_names(self) -> list[str]:
        return [p.name.lower() for p in self.parameters if p.where == "header"]

    def check(
        self,
        path_values: Mapping[str, str],
        query: tuple[tuple[str, str], ...],
        headers: Mapping[str, list[str]],
    ) -> None:
        """Path, query and header parameters; unknown query names refused."""
        declared = {p.name for p in self.parameters if p.where == "query"}
        if not self.allow_unknown_query:
            for position, (name, _) in enumerate(query):
                if name not in declared:
                    raise _invalid("value", "query_unknown", f"query[{position}]")
        for parameter in self.parameters:
            values = _values(parameter, path_values, query, headers)
            if not values:
                if parameter.required:
                    raise _invalid("required", "parameter_missing", parameter.name)
                continue
            _check_parameter(parameter, values)

    def check_body(
        self, content_type: str | None, body: bytes, limits: JsonLimits
    ) -> None:
        if not body:
            if self.body_required:
                raise _invalid("required", "body_missing", "body")
            return
        kind = (content_type or "").split(";")[0].strip().lower()
        validator = self.body.get(kind)
        if validator is None or not kind.endswith("json"):
            raise UnsupportedMediaType(
                "The request body's media type is not accepted here.",
                detail="content_type",
            )
        try:
            value = loads_strict(body, limits=limits)
        except StrictJSONError as exc:
            raise BadRequest(
                "The request body is not valid JSON.", detail=f"json_{exc.reason}"
            ) from exc
        for error in validator.iter_errors(value):
            raise _schema_issue(error, "body")


def _values(
    parameter: Parameter,
    path_values: Mapping[str, str],
    query: tuple[tuple[str, str], ...],
    headers: Mapping[str, list[str]],
) -> list[str]:
    if parameter.where == "path":
        return [path_values[parameter.name]] if parameter.name in path_values else []
    if parameter.where == "header":
        return headers.get(parameter.name.lower(), [])
    return [value for name, value in query if name == parameter.name]


def _coerce(kind: str, text: str) -> Any:
    if kind == "integer" and re.fullmatch(r"-?[0-9]{1,20}", text):
        return int(text)
    if kind == "number" and re.fullmatch(r"-?[0-9]{1,20}(\.[0-9]{1,20})?", text):
        return float(text)
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def _check_parameter(parameter: Parameter, values: list[str]) -> None:
    if parameter.kind == "array":
        value: Any = [item for text in values for item in text.split(",")]
    elif len(values) > 1:
        raise _invalid("structure", "parameter_repeated", parameter.name)
    else:
        value = _coerce(parameter.kind, values[0])
    if parameter.validator is not None:
        for error in parameter.validator.iter_errors(value):
            raise _schema_issue(error, parameter.name)


def _invalid(code: str, detail: str, expression: str) -> InvalidContent:
    messages = {
        "structure": "The request does not have the structure the API defines.",
        "required": "A required part of the request is missing.",
        "value": "A part of the request has a value the API does not allow.",
    }
    return InvalidContent(
        messages[code], issue_code=code, detail=detail, expression=expression
    )


def _schema_issue(error: jsonschema_rs.ValidationError, root: str) -> InvalidContent:
    kind = type(error.kind).__name__
    names = [
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in error.instance_path
    ]
    where = root + "".join(
        name if re.fullmatch(r"(\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]{0,63})", name) else ".*"
        for name in names
    )
    if kind == "Required":
        return _invalid("required", "schema_required", where)
    if kind in ("Type", "AdditionalProperties", "MinItems", "MaxItems", "AnyOf"):
        return _invalid("structure", "schema_structure", where)
    return _invalid("value", "schema_value", where)


class OpenApiDocument:
    """An operator's OpenAPI document, checked and compiled at start-up."""

    def __init__(
        self, spec: dict[str, Any], *, allow_unknown_query: bool = False
    ) -> None:
        try:
            validate_spec(spec)
        except OpenAPIValidationError as exc:
            raise ConfigError(f"the OpenAPI document is not valid: {exc}") from exc
        version_30 = str(spec.get("openapi", "")).startswith("3.0")
        _bound_integers(spec, nullable_keyword=version_30)
        draft = jsonschema_rs.Draft4 if version_30 else jsonschema_rs.Draft202012
        self._registry = jsonschema_rs.Registry([(_URI, spec)], draft=draft)
        self._validator_class: Any = (
            jsonschema_rs.Draft4Validator
            if version_30
            else jsonschema_rs.Draft202012Validator
        )
        self._allow_unknown = allow_unknown_query
        self._security = spec.get("security")
        self._spec = spec
        self.operations: list[tuple[re.Pattern[str], dict[str, Operation]]] = []
        for template, item in spec.get("paths", {}).items():
            self.operations.append(
                (_template_regex(template), self._compile_path(template, item))
            )

    @classmethod
    def load(cls, path: str, *, allow_unknown_query: bool = False) -> OpenApiDocument:
        try:
            text = Path(path).read_text("utf-8")
            spec = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the OpenAPI document {path}") from exc
        if not isinstance(spec, dict):
            raise ConfigError(f"the OpenAPI document {path} is not an object")
        return cls(spec, allow_unknown_query=allow_unknown_query)

    def _resolve(self, ref: str) -> tuple[dict[str, Any], tuple[str | int, ...]]:
        """A local ``#/components/parameters/X`` reference and its pointer."""
        if not ref.startswith("#/"):
            raise ConfigError(f"only local $ref are supported, not {ref!r}")
        parts = tuple(
            part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/")
        )
        node: Any = self._spec
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or "name" not in node:
            raise ConfigError(f"the OpenAPI $ref {ref!r} names no parameter")
        return node, parts

    def _validator(self, *pointer: str | int) -> jsonschema_rs.Validator:
        validator: jsonschema_rs.Validator = self._validator_class(
            {"$ref": _pointer(*pointer)}, registry=self._registry
        )
        return validator

    def _compile_path(
        self, template: str, item: dict[str, Any]
    ) -> dict[str, Operation]:
        found: dict[str, Operation] = {}
        for method in _METHODS:
            if method in item:
                found[method.upper()] = self._operation(template, method, item)
        return found

    def _operation(self, template: str, method: str, item: dict[str, Any]) -> Operation:
        spec = item[method]
        parameters = []
        shared = [
            ("parameters", i, p) for i, p in enumerate(item.get("parameters", []))
        ]
        own = [(method, i, p) for i, p in enumerate(spec.get("parameters", []))]
        for where, index, written in shared + own:
            base: tuple[str | int, ...] = ("paths", template) + (
                (where,) if where == "parameters" else (where, "parameters")
            )
            declared, base = (written, (*base, index))
            if "$ref" in written:
                declared, base = self._resolve(written["$ref"])
            schema = declared.get("schema")
            parameters.append(
                Parameter(
                    declared["name"],
                    declared["in"],
                    bool(declared.get("required", declared["in"] == "path")),
                    _kind(schema or {}),
                    self._validator(*base, "schema") if schema else None,
                )
            )
        body_spec = spec.get("requestBody", {})
        body = {
            kind.lower(): self._validator(
                "paths", template, method, "requestBody", "content", kind, "schema"
            )
            for kind, content in body_spec.get("content", {}).items()
            if "schema" in content
        }
        scopes = tuple(
            frozenset(scope for names in requirement.values() for scope in names)
            for requirement in spec.get("security", self._security or [])
        )
        return Operation(
            template,
            method.upper(),
            tuple(parameters),
            body,
            bool(body_spec.get("required", False)),
            self._allow_unknown or bool(spec.get("x-kaitiaki-allow-unknown-query")),
            scopes,
        )

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation for ``method path``: 404 for no path, 405 for no method."""
        for pattern, operations in self.operations:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            operation = operations.get("GET" if method == "HEAD" else method)
            if operation is None:
                raise MethodNotAllowed("The method is not allowed on this route.")
            return operation, found.groupdict()
        raise NotFound("No route matches the request.", detail="no_route")


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "string")
    if isinstance(kind, list):  # 3.1: ["integer", "null"]
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = _TEMPLATE.split(template)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{_group(part)}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)


def _group(name: str) -> str:
    if not name.isidentifier():
        raise ConfigError(f"path parameter names must be identifiers: {name!r}")
    return name
