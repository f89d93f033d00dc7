"""One request through the pipeline, and the trail the audit event is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kaitiaki.controls.authenticate import bearer_token
from kaitiaki.controls.authorise import authorise
from kaitiaki.controls.filter import apply_carriage_rules
from kaitiaki.controls.identifiers import check_resource_identifiers, check_search
from kaitiaki.controls.validate import check_accept, check_body_headers, check_resource
from kaitiaki.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Refusal,
    UpstreamFailed,
)
from kaitiaki.fhir.interactions import Interaction, match_interaction
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.fhir.scopes import parse_scopes
from kaitiaki.gateway.cors import is_preflight, preflight_reply
from kaitiaki.gateway.responses import FHIR_JSON, Reply, security_headers
from kaitiaki.gateway.upstream import forward, outbound_headers
from kaitiaki.request import (
    CanonicalRequest,
    canonical_path,
    check_framing,
    collect_headers,
    correlation_id,
    encode_query,
    parse_query,
)
from kaitiaki.tokens import verify_access_token
from kaitiaki.waf import Findings

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway, Receive, Scope

__all__ = ["Trail", "handle_request"]

_FORM = "application/x-www-form-urlencoded"


@dataclass(slots=True)
class Trail:
    """What the pipeline established so far; the audit event is built from it."""

    method: str
    client_address: str
    correlation_id: str = "-"
    route: str = "(unmatched)"
    step: str = "edge"
    interaction: str | None = None
    resource_type: str | None = None
    client_id: str | None = None
    subject: str | None = None
    refusal_code: str | None = None
    refusal_step: str | None = None
    bytes_in: int = 0
    waf: Findings = field(default_factory=Findings)

    def refuse(self, refusal: Refusal) -> None:
        self.refusal_code, self.refusal_step = refusal.detail, self.step

    def outcome(self, status: int) -> str:
        if self.refusal_code is not None:
            return "refused" if status < 500 else "failed"
        return "served" if status < 500 else "failed"


def _canonical(gateway: Gateway, scope: Scope, trail: Trail) -> CanonicalRequest:
    limits = gateway.settings.gateway
    headers = collect_headers(
        list(scope.get("headers", [])),
        max_count=limits.max_header_count,
        max_bytes=limits.max_header_bytes,
    )
    trail.correlation_id = correlation_id(headers)
    trail.client_address, scheme = gateway.edge.client_origin(
        trail.client_address, scope.get("scheme", "http"), headers
    )
    check_framing(headers)
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = canonical_path(raw_path, max_bytes=limits.max_uri_bytes)
    query = parse_query(scope.get("query_string", b""), max_bytes=limits.max_uri_bytes)
    return CanonicalRequest(
        method=scope["method"],
        path=path,
        query=query,
        headers=headers,
        client_address=trail.client_address,
        correlation_id=trail.correlation_id,
        scheme=scheme,
    )


def _route(gateway: Gateway, request: CanonicalRequest, trail: Trail) -> Interaction:
    base = gateway.settings.gateway.fhir_base
    if request.path != base and not request.path.startswith(base + "/"):
        raise NotFound("No route matches the request.", detail="no_route")
    interaction = match_interaction(request.method, request.path[len(base) :])
    trail.route = base + interaction.route
    trail.interaction = interaction.name
    trail.resource_type = interaction.resource_type
    return interaction


async def _read_body(receive: Receive, max_bytes: int, trail: Trail) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
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


async def _body(
    gateway: Gateway,
    receive: Receive,
    request: CanonicalRequest,
    interaction: Interaction,
    trail: Trail,
) -> tuple[bytes | None, CanonicalRequest]:
    limit = gateway.settings.gateway.max_body_bytes
    if interaction.name == "search-type-post":
        content_type = (request.header("content-type") or "").split(";")[0].strip()
        if content_type.lower() != _FORM:
            raise BadRequest(
                "A search body must be form-encoded.", detail="search_form"
            )
        form = parse_query(await _read_body(receive, limit, trail), max_bytes=limit)
        trail.step = "filter"
        gateway.filter.inspect_query(form, trail.route, request.path, trail.waf)
        gateway.filter.decide(trail.waf)
        trail.step = "validate"
        query = check_search(request.query + form, gateway.settings.validation)
        merged = CanonicalRequest(**{**_fields(request), "query": query})
        return encode_query(merged.query).encode(), merged
    if not interaction.has_body:
        if interaction.name.startswith("search"):
            query = check_search(request.query, gateway.settings.validation)
            request = CanonicalRequest(**{**_fields(request), "query": query})
        return None, request
    check_body_headers(request, max_bytes=limit)
    body = await _read_body(receive, limit, trail)
    resource = check_resource(body, interaction)
    trail.step = "filter"
    gateway.filter.inspect_resource(resource, trail.route, request.path, trail.waf)
    gateway.filter.decide(trail.waf)
    trail.step = "validate"
    check_resource_identifiers(resource, gateway.settings.validation)
    return body, request


def _fields(request: CanonicalRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__slots__}


async def handle_request(
    gateway: Gateway, scope: Scope, receive: Receive, trail: Trail
) -> Reply:
    settings = gateway.settings
    request = _canonical(gateway, scope, trail)
    gateway.edge.check_address(trail.client_address)
    now = gateway.clock()
    if gateway.limits is not None:
        await gateway.limits.check_address(trail.client_address, now)
    if is_preflight(request.method, request.headers):
        trail.route, trail.interaction = "(preflight)", "cors-preflight"
        return preflight_reply(settings.cors, request.headers)
    interaction = _route(gateway, request, trail)

    trail.step = "filter"
    request = _filter(gateway, request, trail)
    public = request.path[len(settings.gateway.fhir_base) :] in (
        settings.gateway.public_paths
    )
    body: bytes | None = None
    if not public:
        trail.step = "authenticate"
        token = bearer_token(request, max_bytes=settings.auth.max_token_bytes)
        if gateway.keys is None or gateway.limits is None:
            raise RuntimeError("gateway used before startup")
        principal = await verify_access_token(
            token, settings.auth, gateway.keys, int(now)
        )
        trail.client_id, trail.subject = principal.client_id, principal.subject

        trail.step = "throttle"
        await gateway.limits.check_client(principal.client_id, now)

        trail.step = "authorise"
        scopes = parse_scopes(principal.scope)
        authorise(scopes, interaction, request)

        trail.step = "validate"
        body, request = await _body(gateway, receive, request, interaction, trail)
        if interaction.name == "search-type-post":
            trail.step = "authorise"
            authorise(scopes, interaction, request)

    trail.step = "upstream"
    return await _proxy(gateway, request, body, trail, cacheable=public)


def _filter(
    gateway: Gateway, request: CanonicalRequest, trail: Trail
) -> CanonicalRequest:
    """Carriage rules, then the traffic filter over the request head."""
    request = apply_carriage_rules(
        request, strip_cookies=gateway.settings.gateway.strip_cookies
    )
    gateway.filter.inspect_head(request, trail.route, trail.waf)
    gateway.filter.decide(trail.waf)
    check_accept(request)
    return request


async def _proxy(
    gateway: Gateway,
    request: CanonicalRequest,
    body: bytes | None,
    trail: Trail,
    *,
    cacheable: bool,
) -> Reply:
    settings = gateway.settings.gateway
    if gateway.session is None:
        raise RuntimeError("gateway used before startup")
    upstream_base = settings.upstream.rstrip("/")
    url = upstream_base + request.path[len(settings.fhir_base) :]
    if request.query and trail.interaction != "search-type-post":
        url += "?" + encode_query(request.query)
    public = urlsplit(settings.base_url)
    identity = {
        "x-correlation-id": trail.correlation_id,
        # Set only by the gateway (clients' forwarding headers are dropped), so
        # the upstream can build links with the public base, never its own.
        "x-forwarded-host": public.netloc,
        "x-forwarded-proto": public.scheme,
        "x-forwarded-prefix": public.path,
    }
    if trail.client_id is not None:
        identity["kaitiaki-client-id"] = trail.client_id
    if gateway.signer is not None:
        identity[gateway.signer.header] = gateway.signer.sign(
            int(gateway.clock()), trail.client_id
        )
    if trail.interaction == "search-type-post":
        identity["content-type"] = _FORM
    reply = await forward(
        gateway.session,
        request.method,
        url,
        outbound_headers(request.headers, identity),
        body,
        timeout=settings.upstream_timeout_seconds,
    )
    if reply.status >= 500:
        # The upstream's own error page may carry internals: never relay it.
        trail.refusal_code, trail.refusal_step = "upstream_error", "upstream"
        failed = UpstreamFailed("The upstream service failed to process the request.")
        kept = [(name, value) for name, value in reply.headers if name == "retry-after"]
        kept += [("content-type", FHIR_JSON), *security_headers(cacheable=False)]
        return Reply(reply.status, kept, refusal_outcome(failed))
    headers = [
        (name, _public_location(value, upstream_base, settings.base_url))
        if name in ("location", "content-location")
        else (name, value)
        for name, value in reply.headers
        if name != "cache-control"
    ]
    headers += security_headers(cacheable=cacheable and reply.status == 200)
    return Reply(reply.status, headers, reply.body)


def _public_location(value: str, upstream_base: str, public_base: str) -> str:
    """Upstream host names never leak: rewrite internal locations, keep public
    ones, and replace anything else by the public base."""
    if value == public_base or value.startswith(public_base + "/"):
        return value
    if value == upstream_base or value.startswith(upstream_base + "/"):
        return public_base + value[len(upstream_base) :]
    return public_base
