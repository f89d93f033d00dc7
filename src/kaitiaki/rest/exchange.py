"""One request on a non-FHIR REST route: the same steps as a FHIR request,
with the operator's OpenAPI document deciding what is valid.

Every REST operation needs a verified access token (there is no public REST
operation); the scopes an operation's OAuth security requirement lists must
all be in the token (any one requirement suffices). Refusals are written in
the standard's ``errors[]`` format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaitiaki.controls.filter import apply_carriage_rules
from kaitiaki.controls.validate import json_limits
from kaitiaki.errors import InsufficientScope, UpstreamFailed
from kaitiaki.gateway.responses import Reply, security_headers
from kaitiaki.gateway.upstream import outbound_headers
from kaitiaki.request import CanonicalRequest, encode_query
from kaitiaki.rest.errors import refusal_errors
from kaitiaki.rest.openapi import OpenApiDocument, Operation
from kaitiaki.settings import RestRoute

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway, Receive
    from kaitiaki.gateway.trail import Trail

__all__ = ["find_rest_route", "handle_rest"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NEVER_FORWARDED = frozenset(
    {"authorization", "cookie", "host", "forwarded", "x-forwarded-for", "x-real-ip"}
)


def find_rest_route(
    gateway: Gateway, path: str
) -> tuple[RestRoute, OpenApiDocument] | None:
    for route, document in gateway.rest_routes:
        if path == route.prefix or path.startswith(route.prefix + "/"):
            return route, document
    return None


def _authorise(operation: Operation, scope: str) -> None:
    granted = set(scope.split())
    if operation.scopes and not any(needed <= granted for needed in operation.scopes):
        raise InsufficientScope(
            "The access token does not permit this request.", detail="scope_rest"
        )


async def handle_rest(
    gateway: Gateway,
    found: tuple[RestRoute, OpenApiDocument],
    request: CanonicalRequest,
    receive: Receive,
    trail: Trail,
) -> Reply:
    # The FHIR path's token step and bounded, streamed body reader (same
    # rules, same limits, same trail).
    from kaitiaki.gateway.bodies import declares_body, read_body
    from kaitiaki.gateway.exchange import authenticate_caller

    route, document = found
    trail.api = "rest"
    operation, path_values = document.match(
        request.method, request.path[len(route.prefix) :] or "/"
    )
    trail.route = route.prefix + operation.template
    trail.interaction = "rest"

    trail.step = "filter"
    request = apply_carriage_rules(
        request, strip_cookies=gateway.settings.gateway.strip_cookies
    )
    gateway.filter.inspect_head(request, trail.route, trail.waf)
    gateway.filter.decide(trail.waf)

    trail.step = "authenticate"
    settings = gateway.settings
    if gateway.limits is None:
        raise RuntimeError("gateway used before startup")
    now = gateway.clock()
    principal = await authenticate_caller(gateway, request, trail, now)

    # As on FHIR routes: authorised first, so that a refused request uses up
    # no quota; the grant's concurrency lease is given back however it ends.
    trail.step = "authorise"
    _authorise(operation, principal.scope)

    trail.step = "throttle"
    grant = await gateway.limits.check_client(
        principal.client_id,
        now,
        subject=principal.subject,
        interaction="rest",
        path=request.path,
        query=request.query,
    )
    try:
        trail.step = "validate"
        operation.check(path_values, request.query, request.headers)
        body = b""
        # A body is read to its end whenever one is declared, so that one the
        # listener finds malformed is refused before anything goes upstream.
        if request.method in _BODY_METHODS or declares_body(request):
            body = await read_body(
                receive,
                settings.gateway.max_body_bytes,
                trail,
                idle_seconds=settings.gateway.body_timeout_seconds,
                total_seconds=settings.gateway.body_deadline_seconds,
            )
        operation.check_body(
            request.header("content-type"), body, json_limits(settings.validation)
        )

        trail.step = "upstream"
        reply = await _proxy(
            gateway, route, request, body or None, trail, operation=operation
        )
    finally:
        await gateway.limits.release(grant)
    # The gateway's limits replace any the upstream advertised.
    ours = {name for name, _ in grant.headers}
    reply.headers = [h for h in reply.headers if h[0] not in ours]
    reply.headers.extend(grant.headers)
    return reply


async def _proxy(
    gateway: Gateway,
    route: RestRoute,
    request: CanonicalRequest,
    body: bytes | None,
    trail: Trail,
    *,
    operation: Operation,
) -> Reply:
    if gateway.upstream is None:
        raise RuntimeError("gateway used before startup")
    url = route.upstream.rstrip("/") + request.path[len(route.prefix) :]
    if request.query:
        url += "?" + encode_query(request.query)
    # The operation's own (validated) header parameters go upstream too;
    # credentials and forwarding headers never do.
    identity = {
        name: request.headers[name][0]
        for name in operation.header_names()
        if name in request.headers and name not in _NEVER_FORWARDED
    }
    identity["x-correlation-id"] = trail.correlation_id
    if trail.client_id is not None:
        identity["kaitiaki-client-id"] = trail.client_id
    reply = await gateway.upstream.send(
        request.method,
        url,
        outbound_headers(request.headers, identity),
        body,
        timeout=gateway.settings.gateway.upstream_timeout_seconds,
    )
    if reply.status >= 500:
        trail.refusal_code, trail.refusal_step = "upstream_error", "upstream"
        failed = UpstreamFailed("The upstream service failed to process the request.")
        headers = [("content-type", "application/json")]
        return Reply(
            reply.status,
            headers + security_headers(cacheable=False),
            refusal_errors(failed),
        )
    headers = [
        (n, v) for n, v in reply.headers if n not in ("cache-control", "location")
    ]
    return Reply(reply.status, headers + security_headers(cacheable=False), reply.body)
