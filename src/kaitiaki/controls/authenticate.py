"""Find the bearer token: only in ``Authorization``, only once, only ``Bearer``."""

from __future__ import annotations

import re

from kaitiaki.errors import InvalidToken, Unauthenticated
from kaitiaki.request import CanonicalRequest

__all__ = ["bearer_token"]

# RFC 6750 b64token, bounded so a huge value is refused before any work.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token(request: CanonicalRequest, *, max_bytes: int) -> str:
    values = request.headers.get("authorization", [])
    if not values:
        raise Unauthenticated("An access token is required.", detail="no_token")
    if len(values) > 1:
        raise InvalidToken("The access token is not valid.", detail="repeated_header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("An access token is required.", detail="not_bearer")
    token = token.strip()
    if len(token) > max_bytes:
        raise InvalidToken("The access token is not valid.", detail="token_too_large")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("The access token is not valid.", detail="token_syntax")
    return token
