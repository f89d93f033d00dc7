"""One FHIR request through the pipeline, step by step: canonical request,
filter, authentication, authorisation, limits, body, upstream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaitiaki.controls.authenticate import authenticate
from kaitiaki.controls.authorise import Decision, authorise
from kaitiaki.controls.filter import apply_carriage_rules
from kaitiaki.controls.policy import apply_policy
from kaitiaki.controls.validate import check_accept, refuse_conditional_create
from kaitiaki.errors import Forbidden, NotFound
from kaitiaki.fhir.interactions import Interaction, match_interaction
from kaitiaki.fhir.scopes import parse_scopes
from kaitiaki.gateway.bodies import SEARCH_POSTS, request_body
from kaitiaki.gateway.cors import is_preflight, preflight_reply
from kaitiaki.gateway.proxying import proxy
from kaitiaki.gateway.public import is_public
from kaitiaki.gateway.responses import Reply
from kaitiaki.gateway.trail import Access, Trail
from kaitiaki.limits import RateDecision
from kaitiaki.request import (
    CanonicalRequest,
    canonical_path,
    check_framing,
    check_host,
    collect_headers,
    correlation_id,
    encode_query,
    parse_query,
)
from kaitiaki.rest.exchange import find_rest_route, handle_rest
from kaitiaki.tokens.jwt import Principal
from kaitiaki.tokens.mtls import certificate_from

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway, Receive, Scope
    from kaitiaki.settings import Settings

__all__ = ["Access", "Trail", "authenticate_caller", "handle_request"]


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
    check_framing(headers, scope.get("http_version", "1.1"))
    check_host(headers, limits.host_names())
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = canonical_path(raw_path, max_bytes=limits.max_uri_bytes)
    query = parse_query(scope.get("query_string", b""), max_bytes=limits.max_uri_bytes)
    trail.query = query
    tls = scope.get("extensions", {}).get("tls")
    certificate = certificate_from(
        tls, headers, trail.client_address, gateway.settings.auth.mtls
    )
    return CanonicalRequest(
        method=scope["method"],
        path=path,
        query=query,
        headers=headers,
        client_address=trail.client_address,
        correlation_id=trail.correlation_id,
        scheme=scheme,
        client_certificate=certificate,
    )


def _route(gateway: Gateway, request: CanonicalRequest, trail: Trail) -> Interaction:
    base = gateway.settings.gateway.fhir_base
    if request.path != base and not request.path.startswith(base + "/"):
        raise NotFound("No route matches the request.", detail="no_route")
    interaction = match_interaction(request.method, request.path[len(base) :])
    if gateway.validator is not None:
        gateway.validator.check_route(interaction, request)
    trail.route = base + interaction.route
    trail.interaction = interaction.name
    trail.resource_type = interaction.resource_type
    trail.resource_id = interaction.resource_id
    return interaction


def _authorise(
    gateway: Gateway,
    principal: Principal,
    interaction: Interaction,
    request: CanonicalRequest,
    trail: Trail,
) -> tuple[Access, CanonicalRequest]:
    settings = gateway.settings
    prefixes = (settings.gateway.base_url, *settings.authorise.scope_prefixes)
    grants = parse_scopes(principal.scope, prefixes=prefixes)
    context = apply_policy(
        principal,
        grants,
        request,
        interaction,
        settings.authorise,
        contexts=gateway.contexts,
    )
    access = Access(
        principal,
        grants,
        single=interaction.is_single,
        operation=interaction.is_operation,
    )
    if context is not None:
        access.request_context = context.encoded
        trail.organisation, trail.facility = context.organisation, context.facility
        trail.purpose_of_use = " ".join(context.purpose_of_use)
    decision = _decide(gateway, access, interaction, request)
    return access, decision.request


def _decide(
    gateway: Gateway,
    access: Access,
    interaction: Interaction,
    request: CanonicalRequest,
) -> Decision:
    decision = authorise(
        access.grants,
        interaction,
        request,
        gateway.settings.authorise,
        patient=access.principal.patient,
    )
    access.patient = access.patient or decision.patient
    access.rules = access.rules or decision.rules
    return decision


async def authenticate_caller(
    gateway: Gateway, request: CanonicalRequest, trail: Trail, now: float
) -> Principal:
    """The caller's verified principal; a suspended client is refused."""
    if gateway.tokens is None:
        raise RuntimeError("gateway used before startup")
    principal = await authenticate(request, gateway.settings, gateway.tokens, int(now))
    trail.client_id, trail.subject = principal.client_id, principal.subject
    trail.scope, trail.token_id = principal.scope, principal.token_id
    if gateway.suspensions.is_suspended(principal.client_id):
        raise Forbidden("The client is suspended.", detail="client_suspended")
    return principal


def _counted_organisation(
    settings: Settings, principal: Principal, trail: Trail
) -> str | None:
    """The organisation limits count: only one the client is registered to
    (``authorise.context.client_organisations``; authorisation has already
    refused a Request-Context naming another). A self-declared one could be
    anyone's, and would let one client use up another organisation's
    allowance, or escape its own."""
    registered = settings.authorise.context.client_organisations
    return trail.organisation if principal.client_id in registered else None


async def _charge_body(
    gateway: Gateway,
    grant: RateDecision,
    now: float,
    request: CanonicalRequest,
    body: bytes | None,
    *,
    interaction: Interaction,
    access: Access,
    trail: Trail,
) -> tuple[RateDecision, CanonicalRequest, bytes | None]:
    """Charge what the body showed a request to cost: a Bundle's entries, a
    ``_search`` form's parameters (then decided again on the merged query)."""
    if gateway.limits is None:
        raise RuntimeError("gateway used before startup")
    if access.entries:
        trail.step = "throttle"
        grant = await gateway.limits.top_up(
            grant, now, query=request.query, entries=access.entries
        )
    if interaction.name in SEARCH_POSTS:
        trail.step = "throttle"
        grant = await gateway.limits.top_up(grant, now, query=request.query)
        trail.step = "authorise"
        request = _decide(gateway, access, interaction, request).request
        body = encode_query(request.query).encode()
    return grant, request, body


async def handle_request(
    gateway: Gateway, scope: Scope, receive: Receive, trail: Trail
) -> Reply:
    settings = gateway.settings
    request = _canonical(gateway, scope, trail)
    gateway.edge.check_address(trail.client_address)
    now = gateway.clock()
    if gateway.limits is None:
        raise RuntimeError("gateway used before startup")
    grant = await gateway.limits.check_address(trail.client_address, now)
    if is_preflight(request.method, request.headers):
        trail.route, trail.interaction = "(preflight)", "cors-preflight"
        return preflight_reply(settings.cors, request.headers)
    rest = find_rest_route(gateway, request.path)
    if rest is not None:
        return await handle_rest(gateway, rest, request, receive, trail)
    interaction = _route(gateway, request, trail)

    trail.step = "filter"
    request = _filter(gateway, request, trail)
    public = is_public(
        request.path[len(settings.gateway.fhir_base) :], settings.gateway.public_paths
    )
    body: bytes | None = None
    access: Access | None = None
    if not public:
        trail.step = "authenticate"
        principal = await authenticate_caller(gateway, request, trail, now)

        # Authorisation first (no I/O: scopes, policy, Request-Context), so
        # that the organisation its Request-Context names is counted too; as
        # in Kong, a request refused by policy does not use up a quota.
        trail.step = "authorise"
        access, request = _authorise(gateway, principal, interaction, request, trail)

        trail.step = "throttle"
        grant = await gateway.limits.check_client(
            principal.client_id,
            now,
            subject=principal.subject,
            organisation=_counted_organisation(settings, principal, trail),
            interaction=interaction.name,
            path=request.path,
            query=request.query,
        )

        try:
            trail.step = "validate"
            body, request = await request_body(
                gateway, receive, request, interaction, trail, access=access
            )
            grant, request, body = await _charge_body(
                gateway,
                grant,
                now,
                request,
                body,
                interaction=interaction,
                access=access,
                trail=trail,
            )
            trail.query = request.query
        except BaseException:
            # A refused request gives its concurrency lease back at once.
            await gateway.limits.release(grant)
            raise

    try:
        trail.step = "audit"
        if gateway.audit is not None:
            gateway.audit.check_ready()
        trail.step = "upstream"
        reply = await proxy(
            gateway, request, body, trail, cacheable=public, access=access
        )
    finally:
        await gateway.limits.release(grant)
    # The gateway's limits replace any the upstream advertised.
    ours = {name for name, _ in grant.headers}
    reply.headers = [h for h in reply.headers if h[0] not in ours]
    reply.headers.extend(grant.headers)
    return reply


def _filter(
    gateway: Gateway, request: CanonicalRequest, trail: Trail
) -> CanonicalRequest:
    """Carriage rules, then the traffic filter over the request head."""
    request = apply_carriage_rules(
        request, strip_cookies=gateway.settings.gateway.strip_cookies
    )
    gateway.filter.inspect_head(request, trail.route, trail.waf)
    gateway.filter.decide(trail.waf)
    check_accept(
        request,
        required=gateway.settings.validation.require_accept,
        help_url=gateway.settings.gateway.base_url + "/metadata",
    )
    refuse_conditional_create(request)
    return request
