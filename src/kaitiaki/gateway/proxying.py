"""The upstream hop of a FHIR request: the headers only the gateway sets,
the reply's checks, and what of the reply reaches the client."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kaitiaki.controls.compartment import filter_reply
from kaitiaki.errors import NotFound, UpstreamFailed
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.gateway.bodies import FORM, SEARCH_POSTS
from kaitiaki.gateway.responses import FHIR_JSON, Reply, security_headers
from kaitiaki.gateway.upstream import UpstreamReply, outbound_headers
from kaitiaki.request import CanonicalRequest, encode_query

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway
    from kaitiaki.gateway.trail import Access, Trail

__all__ = ["proxy"]


async def proxy(
    gateway: Gateway,
    request: CanonicalRequest,
    body: bytes | None,
    trail: Trail,
    *,
    cacheable: bool,
    access: Access | None = None,
) -> Reply:
    settings = gateway.settings.gateway
    if gateway.upstream is None:
        raise RuntimeError("gateway used before startup")
    upstream_base = settings.upstream.rstrip("/")
    url = upstream_base + request.path[len(settings.fhir_base) :]
    if request.query and trail.interaction not in SEARCH_POSTS:
        url += "?" + encode_query(request.query)
    identity = _identity(gateway, trail, access)
    checked = access is not None and access.checks_egress
    # A HEAD whose reply must be checked is sent as GET.
    method = "GET" if checked and request.method == "HEAD" else request.method
    reply = await gateway.upstream.send(
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
    if trail.interaction in SEARCH_POSTS:
        identity["content-type"] = FORM
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
