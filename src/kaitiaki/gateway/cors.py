"""CORS for browser clients: exact origins, never credentials, preflight here.

The gateway answers every preflight itself (it is never forwarded). A listed
origin is echoed in ``Access-Control-Allow-Origin`` with ``Vary: Origin``; an
unlisted one gets no CORS header at all. ``Access-Control-Allow-Credentials``
is never sent: bearer tokens travel in ``Authorization``, not in cookies.
"""

from __future__ import annotations

from kaitiaki.errors import Blocked
from kaitiaki.gateway.responses import Reply, security_headers
from kaitiaki.settings import CorsSettings

__all__ = ["cors_headers", "is_preflight", "preflight_reply"]

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")


def is_preflight(method: str, headers: dict[str, list[str]]) -> bool:
    return method == "OPTIONS" and "access-control-request-method" in headers


def _origin(headers: dict[str, list[str]]) -> str | None:
    values = headers.get("origin", [])
    return values[0] if len(values) == 1 else None


def cors_headers(
    settings: CorsSettings, headers: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """The CORS headers of an actual (non-preflight) reply."""
    origin = _origin(headers)
    if origin is None or origin not in settings.allow_origins:
        return []
    return [
        ("access-control-allow-origin", origin),
        ("access-control-expose-headers", ", ".join(settings.expose_headers)),
        ("vary", "Origin"),
    ]


def preflight_reply(settings: CorsSettings, headers: dict[str, list[str]]) -> Reply:
    """204 with the allowed method and headers, or 403 without any CORS header."""
    origin = _origin(headers)
    method = headers["access-control-request-method"][0].strip()
    requested = {
        name.strip().lower()
        for value in headers.get("access-control-request-headers", ())
        for name in value.split(",")
        if name.strip()
    }
    if (
        origin is None
        or origin not in settings.allow_origins
        or method not in _METHODS
        or not requested <= set(settings.allow_headers)
    ):
        raise Blocked("The cross-origin request is not allowed.", detail="cors_refused")
    return Reply(
        204,
        [
            # Access-Control-Allow-Origin and Vary are added to every reply
            # for a listed origin by cors_headers, this one included.
            ("access-control-allow-methods", ", ".join(_METHODS)),
            ("access-control-allow-headers", ", ".join(settings.allow_headers)),
            ("access-control-max-age", str(settings.max_age_seconds)),
            *security_headers(cacheable=False),
        ],
    )
