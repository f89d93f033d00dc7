"""Validate the parts of a FHIR request body the gateway can judge alone.

The body must be declared as FHIR JSON in UTF-8, must not be compressed,
must fit the size limit, must be strict JSON (no duplicate members, no
NaN, bounded depth) and must be a resource of the type the URL names, with
the URL's id on update.
"""

from __future__ import annotations

from typing import Any

from kaitiaki.errors import (
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.request import CanonicalRequest
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = ["check_accept", "check_body_headers", "check_json_body", "check_resource"]

_JSON_TYPES = ("application/fhir+json", "application/json")
# JSON Patch, or FHIRPath Patch (a Parameters resource).
_PATCH_TYPES = ("application/json-patch+json", *_JSON_TYPES)
_ACCEPTABLE = (*_JSON_TYPES, "application/*", "*/*")
_FORMATS = ("json", "application/json", "application/fhir+json")


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, *params = value.split(";")
    parsed = {}
    for param in params:
        name, _, text = param.partition("=")
        parsed[name.strip().lower()] = text.strip().strip('"').lower()
    return kind.strip().lower(), parsed


def check_accept(request: CanonicalRequest) -> None:
    """Refuse a response format other than FHIR JSON (406); absent means JSON."""
    formats = [value for name, value in request.query if name == "_format"]
    if any(value not in _FORMATS for value in formats):
        raise NotAcceptable(
            "Only FHIR JSON responses are available.",
            detail="format",
            expression="_format",
        )
    accept = request.header("accept")
    if accept is None or formats:
        return
    kinds = [_media_type(item)[0] for item in accept.split(",")]
    if not any(kind in _ACCEPTABLE for kind in kinds):
        raise NotAcceptable("Only FHIR JSON responses are available.", detail="accept")


def check_body_headers(
    request: CanonicalRequest, *, max_bytes: int, patch: bool = False
) -> None:
    """Check what the headers promise about a body, before reading it."""
    encoding = request.header("content-encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            "Compressed request bodies are not accepted.", detail="content_encoding"
        )
    content_type = request.header("content-type")
    if content_type is None:
        raise UnsupportedMediaType(
            "A Content-Type of application/fhir+json is required.",
            detail="content_type_missing",
        )
    kind, params = _media_type(content_type)
    accepted = _PATCH_TYPES if patch else _JSON_TYPES
    if kind not in accepted or params.get("charset", "utf-8") != "utf-8":
        raise UnsupportedMediaType(
            "Only application/fhir+json in UTF-8 is accepted.", detail="content_type"
        )
    length = request.header("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge("The request body is too large.")


def _strict(body: bytes) -> Any:
    try:
        return loads_strict(body, max_depth=64)
    except StrictJSONError as exc:
        raise BadRequest(
            "The request body is not valid JSON.", detail=f"json_{exc.reason}"
        ) from exc


def check_json_body(body: bytes) -> Any:
    """Parse a body that is not a resource of the URL's type (patch, operation)."""
    value = _strict(body)
    if not isinstance(value, dict | list):
        raise BadRequest("The request body must be JSON.", detail="json_not_object")
    return value


def check_resource(body: bytes, interaction: Interaction) -> dict[str, Any]:
    """Parse the body strictly and check it is the resource the URL names."""
    resource = _strict(body)
    if not isinstance(resource, dict):
        raise BadRequest(
            "The request body must be a FHIR resource.",
            detail="json_not_object",
            expression="resourceType",
        )
    if resource.get("resourceType") != interaction.resource_type:
        raise BadRequest(
            "The resourceType does not match the URL.",
            detail="resource_type_mismatch",
            expression="resourceType",
        )
    if interaction.name == "update" and resource.get("id") != interaction.resource_id:
        raise BadRequest(
            "The resource id does not match the URL.",
            detail="id_mismatch",
            expression="id",
        )
    return resource
