"""Read and check request bodies: size cap, strict JSON, resource shape, forms."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from kaitiaki.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from kaitiaki.refapi.resources import PATIENT_REFERENCE_FIELD
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = [
    "MAX_BODY_BYTES",
    "check_shape",
    "parse_bundle",
    "parse_form",
    "parse_resource",
    "read_body",
]

MAX_BODY_BYTES = 1_048_576
_MAX_FORM_FIELDS = 100
_JSON_TYPES = frozenset({"application/fhir+json", "application/json"})
_FORM_TYPE = "application/x-www-form-urlencoded"

_JSON_REASONS = {
    "duplicate_member": "The body has a duplicate member name.",
    "too_deep": "The body is nested too deeply.",
    "invalid_utf8": "The body is not UTF-8.",
    "byte_order_mark": "The body starts with a byte order mark.",
    "non_finite_number": "The body has a non-finite number.",
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 once it passes ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise BadRequest("Content-Length is not a number.")
    if declared is not None and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge("The body is larger than 1 MiB.")

    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge("The body is larger than 1 MiB.")
    return bytes(body)


def check_shape(resource: dict[str, Any], resource_type: str) -> None:
    """Refuse element shapes the token index could not read."""
    identifiers = resource.get("identifier")
    if identifiers is not None and not (
        isinstance(identifiers, list)
        and all(isinstance(item, dict) for item in identifiers)
    ):
        raise BadRequest(
            "identifier must be a list of objects.", expression="identifier"
        )

    element = PATIENT_REFERENCE_FIELD.get(resource_type)
    if element is not None and element in resource:
        target = resource[element]
        if not isinstance(target, dict) or not isinstance(
            target.get("reference", ""), str
        ):
            raise BadRequest("The reference must be an object.", expression=element)

    if not isinstance(resource.get("meta", {}), dict):
        raise BadRequest("meta must be an object.", expression="meta")


def _json(request: Request, body: bytes) -> Any:
    if _media_type(request) not in _JSON_TYPES:
        raise UnsupportedMediaType("The body must be application/fhir+json.")
    try:
        return loads_strict(body)
    except StrictJSONError as exc:
        message = _JSON_REASONS.get(exc.reason, "The body is not valid JSON.")
        raise BadRequest(message, detail=exc.reason) from exc


def parse_bundle(request: Request, body: bytes) -> dict[str, Any]:
    """Parse ``body`` as a JSON Bundle (its entries are checked one by one)."""
    value = _json(request, body)
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise BadRequest("The body must be a Bundle.", expression="resourceType")
    return value


def parse_resource(request: Request, body: bytes, resource_type: str) -> dict[str, Any]:
    """Parse ``body`` as a JSON resource of ``resource_type``, or refuse with 4xx."""
    value = _json(request, body)
    if not isinstance(value, dict):
        raise BadRequest("The body must be a JSON object.")
    if value.get("resourceType") != resource_type:
        raise BadRequest(
            "The body's resourceType does not match the URL.",
            expression="resourceType",
        )
    check_shape(value, resource_type)
    return value


def parse_form(request: Request, body: bytes) -> list[tuple[str, str]]:
    """Search parameters from a form-encoded ``_search`` body."""
    if not body:
        return []
    if _media_type(request) != _FORM_TYPE:
        raise UnsupportedMediaType(
            "The body must be application/x-www-form-urlencoded."
        )
    try:
        text = body.decode("utf-8", errors="strict")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError as exc:
        raise BadRequest("The form body is malformed.") from exc
