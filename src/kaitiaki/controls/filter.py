"""Zero-trust carriage rules, applied before any credential is looked at.

One rule for client-supplied headers that could steer the gateway or the
upstream (docs/architecture.md, "Zero trust"):

* **Refused (400)**: headers that change the method or the URL after
  authorisation (``X-HTTP-Method-Override`` and kin, ``X-Original-URL``,
  ``X-Rewrite-URL``, ...), and a ``Connection`` header naming anything but
  ``close`` or ``keep-alive`` (a hop-by-hop list is how a client makes a
  proxy drop a header the next hop relies on).
* **Removed**: forwarding headers (``Forwarded``, every ``X-Forwarded-*``,
  ``X-Real-IP``, ``X-Client-IP``, ``True-Client-IP`` and kin) and headers the
  gateway itself sets for the upstream (``Kaitiaki-*``). Forwarding headers
  are read only from a trusted proxy, only for the client address and scheme
  (:mod:`kaitiaki.gateway.edge`); none is ever forwarded, and the gateway's
  own headers are always written by the gateway.
* **Cookies never authenticate**: a request carrying ``Cookie`` is refused
  (401), or, with ``gateway.strip_cookies``, the cookie is removed.
* An access token anywhere but the ``Authorization`` header (the
  ``access_token`` query parameter) is refused (401).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from kaitiaki.errors import BadRequest, Unauthenticated
from kaitiaki.request import CanonicalRequest

__all__ = ["FORWARDING", "apply_carriage_rules", "refuse_method_params"]

_STEERING = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-method",
        "x-original-url",
        "x-rewrite-url",
        "x-override-url",
        "x-original-uri",
        "x-envoy-original-path",
    }
)
#: Headers the gateway writes for the upstream; a client's are removed.
_GATEWAY_PREFIX = "kaitiaki-"
FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-original-forwarded-for",
        "client-ip",
        "via",
    }
)
_CONNECTION_OK = frozenset({"close", "keep-alive"})


_STEERING_PARAMS = frozenset({"_method", "__method", "_httpmethod", "_http_method"})


def _steering(name: str) -> bool:
    return (
        name in _STEERING
        or name.startswith("x-http-method")
        or name.endswith("-method-override")
    )


def _steering_param(name: str) -> bool:
    """A query parameter frameworks read as the method (Rails, Laravel,
    Symfony ``_method``; the header names as parameters). FHIR names its own
    parameters with a leading ``_`` and has no ``_method``."""
    lowered = name.lower()
    return lowered in _STEERING_PARAMS or _steering(lowered.replace("_", "-"))


def refuse_method_params(names: Iterable[str]) -> None:
    """Refuse the parameters of a query, or of a search's form body (where
    frameworks look for ``_method`` first), that override the method."""
    if any(_steering_param(name) for name in names):
        raise BadRequest(
            "Parameters that override the method are not accepted.",
            detail="method_override",
        )


def _removed(name: str) -> bool:
    return (
        name in FORWARDING
        or name.startswith(("x-forwarded-", _GATEWAY_PREFIX))
        or name in ("cookie", "connection")
    )


def _check_connection(headers: dict[str, list[str]]) -> None:
    tokens = {
        token.strip().lower()
        for value in headers.get("connection", ())
        for token in value.split(",")
        if token.strip()
    }
    if tokens - _CONNECTION_OK:
        raise BadRequest(
            "The Connection header may only carry close or keep-alive.",
            detail="connection_header",
        )


def apply_carriage_rules(
    request: CanonicalRequest, *, strip_cookies: bool = False
) -> CanonicalRequest:
    """Refuse steering headers and cookies; return the request without the
    headers that are removed (forwarding headers, stripped cookies)."""
    headers = request.headers
    if "cookie" in headers and not strip_cookies:
        raise Unauthenticated(
            "Cookies are not accepted; send an access token in the Authorization "
            "header.",
            detail="cookie_present",
        )
    if any(_steering(name) for name in headers):
        raise BadRequest(
            "Headers that override the method or URL are not accepted.",
            detail="method_override",
        )
    _check_connection(headers)
    names = request.param_names()
    refuse_method_params(names)
    if "access_token" in names:
        raise Unauthenticated(
            "Access tokens are accepted only in the Authorization header.",
            detail="token_in_query",
        )
    if not any(_removed(name) for name in headers):
        return request
    kept = {name: values for name, values in headers.items() if not _removed(name)}
    return replace(request, headers=kept)
