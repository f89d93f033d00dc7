"""Access tokens of the development issuer: JWTs per RFC 9068.

``sign_access_token`` is also the helper other modules' tests use to mint
tokens with arbitrary claims and headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from kaitiaki.issuer.keys import algorithm_for
from kaitiaki.issuer.refusals import InvalidScope

__all__ = [
    "access_token_claims",
    "grant_scopes",
    "introspect_token",
    "sign_access_token",
]

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
#: RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
_SCOPE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
_MAX_SCOPE_LENGTH = 2048


def sign_access_token(
    private_jwk: Key | Mapping[str, Any],
    claims: Mapping[str, Any],
    *,
    header: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` as a compact JWT with ``private_jwk``.

    The header defaults to ``typ: at+jwt``, the key's algorithm and ``kid``;
    entries of ``header`` replace or extend those defaults.
    """
    key = private_jwk if isinstance(private_jwk, Key) else import_key(dict(private_jwk))
    protected: dict[str, Any] = {"typ": ACCESS_TOKEN_TYPE, "alg": algorithm_for(key)}
    if key.kid:
        protected["kid"] = key.kid
    protected.update(header or {})
    return jwt.encode(protected, dict(claims), key, algorithms=[protected["alg"]])


def access_token_claims(
    *,
    issuer: str,
    audience: str,
    client_id: str,
    scopes: Sequence[str],
    now: int,
    lifetime: int,
    jti: str,
) -> dict[str, Any]:
    """The RFC 9068 claims of a client-credentials access token."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "scope": " ".join(scopes),
        "jti": jti,
        "iat": now,
        "exp": now + lifetime,
    }


def grant_scopes(requested: str | None, registered: Sequence[str]) -> tuple[str, ...]:
    """The scopes to grant: all registered ones, or the requested subset.

    Scopes compare as exact strings; anything not registered is refused
    rather than silently dropped.
    """
    if requested is None:
        return tuple(registered)
    if len(requested) > _MAX_SCOPE_LENGTH:
        raise InvalidScope("the requested scope is too long")
    tokens = requested.split(" ")
    if not requested or any(not t or not set(t) <= _SCOPE_CHARS for t in tokens):
        raise InvalidScope("the scope must be space-separated scope tokens")
    if not set(tokens) <= set(registered):
        raise InvalidScope("a requested scope is not registered for this client")
    return tuple(dict.fromkeys(tokens))


def introspect_token(
    token: str, key: Key, *, issuer: str, now: int, max_bytes: int = 8192
) -> dict[str, Any]:
    """RFC 7662 response for ``token``: its claims if this issuer signed it
    and it is unexpired, else ``{"active": false}``."""
    inactive: dict[str, Any] = {"active": False}
    if len(token) > max_bytes:
        return inactive
    try:
        decoded = jwt.decode(token, key, algorithms=[algorithm_for(key)])
    except (JoseError, ValueError, TypeError):
        return inactive

    claims = decoded.claims
    exp = claims.get("exp")
    if (
        decoded.header.get("typ") != ACCESS_TOKEN_TYPE
        or claims.get("iss") != issuer
        or not isinstance(exp, int)
        or exp <= now
    ):
        return inactive
    token_type = "DPoP" if isinstance(claims.get("cnf"), dict) else "Bearer"
    return {**claims, "active": True, "token_type": token_type}
