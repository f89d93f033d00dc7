"""Validate the parts of a FHIR request body the gateway can judge alone.

The body must be declared as FHIR JSON in UTF-8, must not be compressed,
must fit the size limit, must be strict JSON (no duplicate members, no
NaN, bounded depth and sizes), must be a resource of the type the URL names,
with the URL's id on update, and must have the structure FHIR R4 defines
(every embedded resource too).
"""

from __future__ import annotations

from typing import Any

from kaitiaki.errors import (
    BadRequest,
    NotAcceptable,
    NotSupported,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import ValidationSettings
from kaitiaki.strictjson import JsonLimits, StrictJSONError, loads_strict

__all__ = [
    "check_accept",
    "check_body_headers",
    "check_json_body",
    "check_resource",
    "json_limits",
    "refuse_conditional_create",
]

_JSON_TYPES = ("application/fhir+json", "application/json")
# JSON Patch, or FHIRPath Patch (a Parameters resource).
_PATCH_TYPES = ("application/json-patch+json", *_JSON_TYPES)
_FORMATS = ("json", "application/json", "application/fhir+json")
_CODINGS = ("gzip", "deflate")


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, *params = value.split(";")
    parsed = {}
    for param in params:
        name, _, text = param.partition("=")
        parsed[name.strip().lower()] = text.strip().strip('"').lower()
    return kind.strip().lower(), parsed


def _link(url: str) -> dict[str, str]:
    # HDR-02: a 406 points at what is offered: the server's CapabilityStatement.
    return {"Link": f'<{url}>; rel="help"; type="application/fhir+json"'}


def refuse_conditional_create(request: CanonicalRequest) -> None:
    """``If-None-Exist`` is not forwarded (its search would be decided by no
    scope check), so a conditional create is refused, not turned into a
    plain create that might duplicate a resource."""
    if "if-none-exist" in request.headers:
        raise NotSupported(
            "Conditional create (If-None-Exist) is not supported.",
            detail="conditional_create",
            expression="If-None-Exist",
        )


def check_accept(
    request: CanonicalRequest, *, required: bool = False, help_url: str = "metadata"
) -> None:
    """Refuse a response format other than FHIR JSON (406, with a ``Link`` to
    the formats offered); a missing Accept means JSON unless ``required``."""
    formats = [value for name, value in request.query if name == "_format"]
    if any(value not in _FORMATS for value in formats):
        raise NotAcceptable(
            "Only FHIR JSON responses are available.",
            detail="format",
            expression="_format",
            headers=_link(help_url),
        )
    accept = request.header("accept")
    if accept is None and required and not formats:
        raise BadRequest(
            "An Accept header naming application/fhir+json is required.",
            detail="accept_missing",
            expression="Accept",
        )
    if accept is None or formats:
        return
    if not _accepts_json(accept):
        raise NotAcceptable(
            "Only FHIR JSON responses are available.",
            detail="accept",
            headers=_link(help_url),
        )


def _quality(params: dict[str, str]) -> float:
    """The q of a media range (1 when absent, 0 when not a number)."""
    text = params.get("q", "1")
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if 0.0 <= value <= 1.0 else 0.0


def _accepts_json(accept: str) -> bool:
    """Whether FHIR JSON is acceptable: for either JSON type, the most
    specific range that names it (``type/subtype``, then ``type/*``, then
    ``*/*``) must not have q=0 (RFC 9110 section 12.4.2), and a range that
    names another FHIR version (``fhirVersion``, FHIR R4 3.1.0.1.4) is not
    one for this server."""
    ranges: dict[str, float] = {}
    for item in accept.split(","):
        kind, params = _media_type(item)
        if not kind:
            continue
        version = params.get("fhirversion")
        if version is not None and not (version == "4.0" or version.startswith("4.0.")):
            continue
        # Of repeated ranges, the most favourable one counts.
        ranges[kind] = max(ranges.get(kind, 0.0), _quality(params))
    for json_type in _JSON_TYPES:
        for candidate in (json_type, "application/*", "*/*"):
            if candidate in ranges:
                if ranges[candidate] > 0:
                    return True
                break
    return False


def check_body_headers(
    request: CanonicalRequest,
    *,
    max_bytes: int,
    patch: bool = False,
    compressed: bool = False,
) -> str | None:
    """Check what the headers promise about a body, before reading it; return
    the content coding to undo (gzip or deflate) when ``compressed`` allows it."""
    encoding = (request.header("content-encoding") or "identity").strip().lower()
    if encoding != "identity" and not (compressed and encoding in _CODINGS):
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
    return None if encoding == "identity" else encoding


def json_limits(settings: ValidationSettings) -> JsonLimits:
    return JsonLimits(
        max_depth=settings.max_json_depth,
        max_members=settings.max_json_members,
        max_items=settings.max_json_items,
        max_string=settings.max_json_string,
    )


def _strict(body: bytes, settings: ValidationSettings) -> Any:
    try:
        return loads_strict(body, limits=json_limits(settings))
    except StrictJSONError as exc:
        raise BadRequest(
            "The request body is not valid JSON.", detail=f"json_{exc.reason}"
        ) from exc


def check_json_body(body: bytes, settings: ValidationSettings) -> Any:
    """Parse a body that is not a resource of the URL's type (patch, operation)."""
    value = _strict(body, settings)
    if not isinstance(value, dict | list):
        raise BadRequest("The request body must be JSON.", detail="json_not_object")
    return value


def check_resource(
    body: bytes, interaction: Interaction, settings: ValidationSettings
) -> dict[str, Any]:
    """Parse the body strictly and check it is the resource the URL names."""
    resource = _strict(body, settings)
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
