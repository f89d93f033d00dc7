"""Zero-trust carriage rules, applied before any credential is looked at.

* Cookies never authenticate: a request carrying ``Cookie`` is refused (401).
* Headers that would change the method or the URL after authorisation
  (``X-HTTP-Method-Override`` and kin, ``X-Original-URL``, ``X-Rewrite-URL``)
  are refused (400).
* An access token anywhere but the ``Authorization`` header (the
  ``access_token`` query parameter) is refused (401).
* Forwarding headers (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``) from
  clients are never trusted; :mod:`kaitiaki.gateway.upstream` does not forward
  them, and the client address always comes from the socket.
"""

from __future__ import annotations

from kaitiaki.errors import BadRequest, Unauthenticated
from kaitiaki.request import CanonicalRequest

__all__ = ["apply_carriage_rules"]

_STEERING = (
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "x-original-method",
)


def apply_carriage_rules(request: CanonicalRequest) -> None:
    if "cookie" in request.headers:
        raise Unauthenticated(
            "Cookies are not accepted; send an access token in the Authorization "
            "header.",
            detail="cookie_present",
        )
    if any(name in request.headers for name in _STEERING):
        raise BadRequest(
            "Headers that override the method or URL are not accepted.",
            detail="method_override",
        )
    if "access_token" in request.param_names():
        raise Unauthenticated(
            "Access tokens are accepted only in the Authorization header.",
            detail="token_in_query",
        )
