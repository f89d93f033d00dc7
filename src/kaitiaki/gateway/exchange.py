"""One request through the pipeline, and the trail the audit event is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kaitiaki.controls.authenticate import authenticate, refuse_token_in_form
from kaitiaki.controls.authorise import Decision, authorise
from kaitiaki.controls.bundle import authorise_bundle
from kaitiaki.controls.compartment import check_in_compartment, filter_reply
from kaitiaki.controls.content import inflate
from kaitiaki.controls.filter import apply_carriage_rules
from kaitiaki.controls.identifiers import check_resource_identifiers, check_search
from kaitiaki.controls.labels import Rule, satisfies_rules
from kaitiaki.controls.patient_ids import check_patient_ids
from kaitiaki.controls.policy import apply_policy
from kaitiaki.controls.validate import (
    check_accept,
    check_body_headers,
    check_json_body,
    check_resource,
)
from kaitiaki.errors import (
    BadRequest,
    Forbidden,
    InsufficientScope,
    NotFound,
    PayloadTooLarge,
    Refusal,
    UpstreamFailed,
)
from kaitiaki.fhir.interactions import Interaction, match_interaction
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.fhir.scopes import Grants, parse_scopes
from kaitiaki.gateway.cors import is_preflight, preflight_reply
from kaitiaki.gateway.public import is_public
from kaitiaki.gateway.responses import FHIR_JSON, Reply, security_headers
from kaitiaki.gateway.upstream import UpstreamReply, forward, outbound_headers
from kaitiaki.limits import RateDecision
from kaitiaki.limits.cost import bundle_entries
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
from kaitiaki.waf import Findings

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway, Receive, Scope
    from kaitiaki.settings import Settings

__all__ = ["Trail", "handle_request"]

_FORM = "application/x-www-form-urlencoded"
_SEARCH_POSTS = frozenset({"search-type-post", "search-system-post"})


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
    scope: str | None = None
    token_id: str | None = None  # the jti, hashed before it is recorded
    refusal_code: str | None = None
    refusal_step: str | None = None
    bytes_in: int = 0
    # From Request-Context, once parsed: HPI organisation and facility ids and
    # the purpose-of-use codes, space-separated; never names or user ids.
    organisation: str | None = None
    facility: str | None = None
    purpose_of_use: str | None = None
    # Raw, for the audit event to hash; never serialised as they are.
    resource_id: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    api: str = "fhir"
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
    *,
    access: Access,
) -> tuple[bytes | None, CanonicalRequest]:
    validation, validator = gateway.settings.validation, gateway.validator
    if validator is None:
        raise RuntimeError("gateway used before startup")
    if interaction.name in _SEARCH_POSTS:
        return await _search_form(gateway, receive, request, interaction, trail)
    if not interaction.has_body:
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
    if content_type.lower() != _FORM:
        raise BadRequest("A search body must be form-encoded.", detail="search_form")
    limit = settings.gateway.max_body_bytes
    form = parse_query(await _read_body(receive, limit, trail), max_bytes=limit)
    refuse_token_in_form(form)
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
    body = await _read_body(receive, gateway.settings.gateway.max_body_bytes, trail)
    return body if coding is None else inflate(body, coding, validation)


def _fields(request: CanonicalRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__slots__}


@dataclass(slots=True)
class Access:
    """What authorisation established, for the body and the upstream steps."""

    principal: Principal
    grants: Grants
    patient: str | None = None
    request_context: str | None = None
    single: bool = False
    operation: bool = False
    rules: tuple[Rule, ...] = ()
    # Entries of a batch or transaction Bundle, charged to the limits once the
    # body has been read (``[limits.costs] entry`` units each).
    entries: int = 0

    @property
    def checks_egress(self) -> bool:
        return self.patient is not None or bool(self.rules)


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
    if interaction.name in _SEARCH_POSTS:
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
            body, request = await _body(
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
        reply = await _proxy(
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
    return request


async def _proxy(
    gateway: Gateway,
    request: CanonicalRequest,
    body: bytes | None,
    trail: Trail,
    *,
    cacheable: bool,
    access: Access | None = None,
) -> Reply:
    settings = gateway.settings.gateway
    if gateway.session is None:
        raise RuntimeError("gateway used before startup")
    upstream_base = settings.upstream.rstrip("/")
    url = upstream_base + request.path[len(settings.fhir_base) :]
    if request.query and trail.interaction not in _SEARCH_POSTS:
        url += "?" + encode_query(request.query)
    identity = _identity(gateway, trail, access)
    checked = access is not None and access.checks_egress
    # A HEAD whose reply must be checked is sent as GET.
    method = "GET" if checked and request.method == "HEAD" else request.method
    reply = await forward(
        gateway.session,
        method,
        url,
        outbound_headers(request.headers, identity),
        body,
        timeout=settings.upstream_timeout_seconds,
    )
    if checked and reply.status in (404, 410):
        # The same reply as a resource hidden by the egress check, so that
        # "not there", "deleted" and "not yours" cannot be told apart.
        raise NotFound("The resource was not found.", detail="upstream_not_found")
    _check_reply(gateway, reply)
    if reply.status >= 500:
        return _upstream_failure(reply, trail)
    headers = [
        (name, _public_location(value, upstream_base, settings.base_url))
        if name in ("location", "content-location")
        else (name, value)
        for name, value in reply.headers
        if name != "cache-control"
    ]
    headers += security_headers(cacheable=cacheable and reply.status == 200)
    payload = reply.body
    if access is not None and checked and 200 <= reply.status < 300 and payload:
        payload = _egress(access, payload)
        if method != request.method:
            payload = b""
    return Reply(reply.status, headers, payload)


def _upstream_failure(reply: UpstreamReply, trail: Trail) -> Reply:
    """The upstream's own error page may carry internals: never relay it."""
    trail.refusal_code, trail.refusal_step = "upstream_error", "upstream"
    failed = UpstreamFailed("The upstream service failed to process the request.")
    kept = [(name, value) for name, value in reply.headers if name == "retry-after"]
    kept += [("content-type", FHIR_JSON), *security_headers(cacheable=False)]
    return Reply(reply.status, kept, refusal_outcome(failed))


def _identity(gateway: Gateway, trail: Trail, access: Access | None) -> dict[str, str]:
    """Headers only the gateway sets; a client's own copies never pass."""
    public = urlsplit(gateway.settings.gateway.base_url)
    identity = {
        "x-correlation-id": trail.correlation_id,
        # The upstream builds links with the public base, never its own.
        "x-forwarded-host": public.netloc,
        "x-forwarded-proto": public.scheme,
        "x-forwarded-prefix": public.path,
    }
    if trail.client_id is not None:
        identity["kaitiaki-client-id"] = trail.client_id
    if access is not None and access.request_context is not None:
        identity["request-context"] = access.request_context
    if gateway.signer is not None:
        identity[gateway.signer.header] = gateway.signer.sign(
            int(gateway.clock()), trail.client_id
        )
    if trail.interaction in _SEARCH_POSTS:
        identity["content-type"] = _FORM
    return identity


def _egress(access: Access, payload: bytes) -> bytes:
    return filter_reply(
        payload,
        access.patient,
        single=access.single,
        open_types=access.grants.readable_types(),
        rules=access.rules,
        prune=access.operation,
    )


def _check_reply(gateway: Gateway, reply: UpstreamReply) -> None:
    """Optional response validation (``validation.response_validation``)."""
    if gateway.validator is not None and reply.status < 500:
        content_type = dict(reply.headers).get("content-type", "")
        gateway.validator.check_reply(content_type, reply.body)


def _public_location(value: str, upstream_base: str, public_base: str) -> str:
    """Upstream host names never leak: rewrite internal locations, keep public
    ones, and replace anything else by the public base."""
    if value == public_base or value.startswith(public_base + "/"):
        return value
    if value == upstream_base or value.startswith(upstream_base + "/"):
        return public_base + value[len(upstream_base) :]
    return public_base
