"""Reading and checking a FHIR request's body: bounded, validated, filtered
and authorised before anything is forwarded."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kaitiaki.controls.authenticate import refuse_token_in_form
from kaitiaki.controls.bundle import authorise_bundle
from kaitiaki.controls.compartment import check_in_compartment
from kaitiaki.controls.content import inflate
from kaitiaki.controls.filter import refuse_method_params
from kaitiaki.controls.identifiers import check_resource_identifiers, check_search
from kaitiaki.controls.labels import satisfies_rules
from kaitiaki.controls.patient_ids import check_patient_ids
from kaitiaki.controls.validate import (
    check_body_headers,
    check_json_body,
    check_resource,
)
from kaitiaki.errors import (
    BadRequest,
    InsufficientScope,
    PayloadTooLarge,
    RequestTimeout,
)
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.limits.cost import bundle_entries
from kaitiaki.request import CanonicalRequest, encode_query, parse_query

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway, Receive
    from kaitiaki.gateway.trail import Access, Trail

__all__ = ["FORM", "SEARCH_POSTS", "declares_body", "read_body", "request_body"]

FORM = "application/x-www-form-urlencoded"
SEARCH_POSTS = frozenset({"search-type-post", "search-system-post"})


async def read_body(
    receive: Receive,
    max_bytes: int,
    trail: Trail,
    *,
    idle_seconds: float,
    total_seconds: float,
) -> bytes:
    """The whole body, within ``max_bytes``, each piece within
    ``idle_seconds`` of the one before (``gateway.body_timeout_seconds``) and
    all of it within ``total_seconds`` (``gateway.body_deadline_seconds``)."""
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_seconds
    while True:
        wait = min(idle_seconds, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            raise RequestTimeout(
                "The request body did not arrive in time.", detail="body_timeout"
            ) from None
        if message["type"] == "http.disconnect":
            raise BadRequest("The request body was incomplete.", detail="disconnect")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge("The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            trail.bytes_in = size
            return b"".join(chunks)


async def request_body(
    gateway: Gateway,
    receive: Receive,
    request: CanonicalRequest,
    interaction: Interaction,
    trail: Trail,
    *,
    access: Access,
) -> tuple[bytes | None, CanonicalRequest]:
    validation, validator = gateway.settings.validation, gateway.validator
    if validator is None:
        raise RuntimeError("gateway used before startup")
    if interaction.name in SEARCH_POSTS:
        return await _search_form(gateway, receive, request, interaction, trail)
    if not interaction.has_body:
        if declares_body(request):
            # Read to its end (and dropped) before anything is forwarded: a
            # body the listener finds malformed or incomplete is refused to
            # the client, and the request must not go on upstream meanwhile.
            limits = gateway.settings.gateway
            await read_body(
                receive,
                limits.max_body_bytes,
                trail,
                idle_seconds=limits.body_timeout_seconds,
                total_seconds=limits.body_deadline_seconds,
            )
        if interaction.is_search or interaction.is_operation:
            query = check_search(request.query, validation)
            request = CanonicalRequest(**{**_fields(request), "query": query})
        if interaction.is_search:
            validator.check_search(request, interaction)
        check_patient_ids(interaction, request.query, None, validation)
        return None, request
    body = await _checked_body(gateway, receive, request, interaction, trail)
    if interaction.name in ("batch", "patch") or interaction.is_operation:
        other = _other_body(gateway, body, request, interaction, trail, access=access)
        return other, request
    resource = check_resource(body, interaction, validation)
    trail.step = "filter"
    gateway.filter.inspect_resource(resource, trail.route, request.path, trail.waf)
    gateway.filter.decide(trail.waf)
    trail.step = "validate"
    validator.check_resource(resource)
    check_resource_identifiers(resource, validation)
    check_patient_ids(interaction, (), resource, validation)
    trail.step = "authorise"
    if access.patient is not None:
        check_in_compartment(resource, access.patient)
    if access.rules and not satisfies_rules(resource, access.rules):
        raise InsufficientScope(
            "The access token does not permit this request.", detail="scope_content"
        )
    return body, request


def _other_body(
    gateway: Gateway,
    body: bytes,
    request: CanonicalRequest,
    interaction: Interaction,
    trail: Trail,
    *,
    access: Access,
) -> bytes:
    """A Bundle to the base (authorised entry by entry), a patch, or the
    Parameters of an operation: validated, but not a resource of the URL."""
    validation, validator = gateway.settings.validation, gateway.validator
    if validator is None:
        raise RuntimeError("gateway used before startup")
    value = check_json_body(body, validation)
    if isinstance(value, dict) and "resourceType" in value:
        validator.check_resource(value)
    if interaction.name != "batch":
        return body
    access.entries = bundle_entries(value if isinstance(value, dict) else None)
    trail.step = "authorise"
    decided = authorise_bundle(
        body, access.principal, access.grants, request, gateway.settings
    )
    access.patient = access.patient or decided.patient
    return decided.body


async def _search_form(
    gateway: Gateway,
    receive: Receive,
    request: CanonicalRequest,
    interaction: Interaction,
    trail: Trail,
) -> tuple[bytes, CanonicalRequest]:
    """A ``_search`` POST: its form body is parsed and checked like a query."""
    settings, validator = gateway.settings, gateway.validator
    if validator is None:
        raise RuntimeError("gateway used before startup")
    content_type = (request.header("content-type") or "").split(";")[0].strip()
    if content_type.lower() != FORM:
        raise BadRequest("A search body must be form-encoded.", detail="search_form")
    limit = settings.gateway.max_body_bytes
    body = await read_body(
        receive,
        limit,
        trail,
        idle_seconds=settings.gateway.body_timeout_seconds,
        total_seconds=settings.gateway.body_deadline_seconds,
    )
    form = parse_query(body, max_bytes=limit)
    refuse_token_in_form(form)
    refuse_method_params(name for name, _ in form)
    trail.step = "filter"
    gateway.filter.inspect_query(form, trail.route, request.path, trail.waf)
    gateway.filter.decide(trail.waf)
    trail.step = "validate"
    query = check_search(request.query + form, settings.validation)
    merged = CanonicalRequest(**{**_fields(request), "query": query})
    validator.check_search(merged, interaction)
    check_patient_ids(interaction, merged.query, None, settings.validation)
    return encode_query(merged.query).encode(), merged


async def _checked_body(
    gateway: Gateway,
    receive: Receive,
    request: CanonicalRequest,
    interaction: Interaction,
    trail: Trail,
) -> bytes:
    """The body, once its headers are acceptable, read within the size limit
    and inflated (after authentication) when compressed bodies are enabled."""
    validation = gateway.settings.validation
    coding = check_body_headers(
        request,
        max_bytes=gateway.settings.gateway.max_body_bytes,
        patch=interaction.name == "patch",
        compressed=validation.compressed_bodies,
    )
    limits = gateway.settings.gateway
    body = await read_body(
        receive,
        limits.max_body_bytes,
        trail,
        idle_seconds=limits.body_timeout_seconds,
        total_seconds=limits.body_deadline_seconds,
    )
    return body if coding is None else inflate(body, coding, validation)


def declares_body(request: CanonicalRequest) -> bool:
    """The request says a body follows (a length above 0, or chunks)."""
    if "transfer-encoding" in request.headers:
        return True
    lengths = request.headers.get("content-length", ())
    return any(value.strip() not in ("", "0") for value in lengths)


def _fields(request: CanonicalRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__slots__}
