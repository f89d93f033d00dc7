"""OAuth 2.0 error responses of the issuer (RFC 6749 §5.2) and client failures.

Each refusal carries its RFC 6749 ``error`` code and HTTP status; its
description is a fixed sentence that never repeats any part of the request.
"""

from __future__ import annotations

from kaitiaki.errors import KaitiakiError

__all__ = [
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "OAuthRefusal",
    "TemporarilyUnavailable",
    "TokenRequestFailed",
    "UnsupportedGrantType",
]


class OAuthRefusal(KaitiakiError):
    """A token or introspection request the issuer refuses."""

    code = "oauth_refusal"
    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidRequest(OAuthRefusal):
    error = "invalid_request"


class InvalidClient(OAuthRefusal):
    """Client authentication failed (401, with ``WWW-Authenticate``)."""

    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthRefusal):
    error = "invalid_grant"


class UnsupportedGrantType(OAuthRefusal):
    error = "unsupported_grant_type"


class InvalidScope(OAuthRefusal):
    error = "invalid_scope"


class InvalidTarget(OAuthRefusal):
    """The requested resource or audience is not served (RFC 8707 §2)."""

    error = "invalid_target"


class InvalidDpopProof(OAuthRefusal):
    error = "invalid_dpop_proof"


class TemporarilyUnavailable(OAuthRefusal):
    """The issuer cannot take the request now (RFC 7009 §2.2.1: 503)."""

    error = "temporarily_unavailable"
    status = 503


class TokenRequestFailed(KaitiakiError):
    """``fetch_token`` got no access token.

    ``error`` is the OAuth error code the issuer returned, or
    ``"unreachable"`` (no HTTP answer) or ``"invalid_response"`` (an answer
    that is not a usable OAuth response).
    """

    code = "token_request_failed"

    def __init__(self, message: str, *, error: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
