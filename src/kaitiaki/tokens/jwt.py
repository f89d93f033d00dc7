"""Verify a JWT access token (RFC 9068) and turn it into a :class:`Principal`.

The order matters: size and shape are checked before any base64 decoding,
the header before any key lookup, the key's algorithm before the signature,
and the claims only after the signature. The algorithm comes from the key
and the allow-list, never from the token: ``none`` and HMAC cannot verify.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

from kaitiaki.errors import InvalidToken
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.claims import check_audience, check_times, principal_from
from kaitiaki.tokens.compact import CompactJws, refuse, split_compact
from kaitiaki.tokens.keys import VerificationKey
from kaitiaki.tokens.principal import Principal

__all__ = [
    "JwtVerifier",
    "KeySource",
    "Principal",
    "check_claims",
    "read_header",
    "verify_access_token",
]

_KID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
_KEY_LOCATORS = ("jku", "x5u", "jwk", "x5c")
_AT_JWT = frozenset({"at+jwt", "application/at+jwt"})
# Accepted only when strict typ checking is off (Keycloak: "Bearer").
_LENIENT_TYP = frozenset({"jwt", "application/jwt", "bearer", *_AT_JWT})


class KeySource(Protocol):
    async def get(self, kid: str) -> VerificationKey | None: ...


def _check_typ(header: dict[str, Any], settings: AuthSettings) -> None:
    typ = header.get("typ")
    if typ is None and not settings.require_at_jwt_typ:
        return
    if not isinstance(typ, str):
        raise refuse("typ_not_at_jwt")
    # Media types compare case-insensitively; other JWT kinds (DPoP proofs,
    # logout tokens, security events) are never access tokens.
    allowed = _AT_JWT if settings.require_at_jwt_typ else _LENIENT_TYP
    if typ.lower() not in allowed:
        raise refuse("typ_not_at_jwt")


def check_header(header: dict[str, Any], settings: AuthSettings) -> str:
    """Check the JOSE header of an access token; return its ``kid``."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.allowed_algorithms():
        raise refuse("alg_not_allowed")
    if "crit" in header:
        raise refuse("crit_not_understood")
    if any(name in header for name in _KEY_LOCATORS):
        raise refuse("key_locator_header")
    _check_typ(header, settings)
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise refuse("kid_invalid")
    return kid


def read_header(token: str, settings: AuthSettings) -> tuple[CompactJws, str]:
    """Check shape and header; return the split token and the ``kid``."""
    jws = split_compact(token, max_bytes=settings.max_token_bytes)
    return jws, check_header(jws.header, settings)


def check_claims(claims: dict[str, Any], settings: AuthSettings, now: int) -> Principal:
    """Check the registered claims of a signature-verified token at ``now``."""
    if claims.get("iss") != settings.issuer:
        raise refuse("iss_mismatch")
    check_audience(claims, settings)
    expires = check_times(
        claims, settings, now, require_iat=settings.require_at_jwt_typ
    )
    return principal_from(claims, settings, expires, "jwt")


async def verify_access_token(
    token: str, settings: AuthSettings, keys: KeySource, now: int
) -> Principal:
    """Verify ``token`` completely; raise :class:`InvalidToken` on any fault."""
    jws, kid = read_header(token, settings)
    return (await _verify_split(jws, kid, settings, keys, now))[2]


async def _verify_split(
    jws: CompactJws, kid: str, settings: AuthSettings, keys: KeySource, now: int
) -> tuple[dict[str, Any], VerificationKey, Principal]:
    found = await keys.get(kid)
    if found is None:
        raise refuse("kid_unknown")
    alg = jws.header["alg"]
    if alg not in found.algorithms:
        raise refuse("alg_not_for_key")
    if not found.verify(alg, jws.signing_input, jws.signature):
        raise refuse("bad_signature")
    claims = jws.payload()
    return claims, found, check_claims(claims, settings, now)


class JwtVerifier:
    """:func:`verify_access_token` with two memos of what has already verified.

    *Headers.* Every token one issuer key signs carries the same header
    segment, so its decision (shape, ``alg``, ``typ``, ``kid``) is remembered
    under the exact segment text, for these immutable settings, once a token
    with it has verified (at most ``max_headers``).

    *Signatures.* A client sends the same token on every request until it
    expires, and the signature check is the costliest step. Once a token's
    signature has verified, its payload is remembered under the SHA-256 of the
    whole token with the key object that verified it (at most
    ``settings.verified_token_cache`` entries; 0 turns the memo off; Envoy's
    ``jwt_cache_config`` does the same). A remembered token counts only while
    its ``kid`` still resolves to that same key object: a key the issuer has
    withdrawn or replaced, and any refetch of the key set, sends the token
    through the full check again. Every claim is checked again at ``now``, so
    expiry, ``nbf``, audience and lifetime are decided per request exactly as
    without the memo. Only verified tokens enter either memo: forgeries
    cannot fill them.
    """

    def __init__(
        self, settings: AuthSettings, keys: KeySource, max_headers: int = 64
    ) -> None:
        self._settings = settings
        self.keys = keys
        self._headers: dict[str, tuple[dict[str, Any], str]] = {}
        self._max = max_headers
        self._verified: dict[bytes, tuple[dict[str, Any], str, VerificationKey]] = {}
        self._max_verified = settings.verified_token_cache

    async def verify(self, token: str, now: int) -> Principal:
        settings = self._settings
        digest = b""
        if self._max_verified:
            if len(token) > settings.max_token_bytes:
                raise refuse("token_too_large")
            digest = hashlib.sha256(token.encode()).digest()
            remembered = self._verified.get(digest)
            if (
                remembered is not None
                and await self.keys.get(remembered[1]) is remembered[2]
            ):
                try:
                    return check_claims(remembered[0], settings, now)
                except InvalidToken:
                    # Another request may have forgotten it meanwhile.
                    self._verified.pop(digest, None)
                    raise
        segment = token.partition(".")[0]
        known = self._headers.get(segment)
        if known is None:
            jws, kid = read_header(token, settings)
        else:
            jws = split_compact(
                token, max_bytes=settings.max_token_bytes, known_header=known[0]
            )
            kid = known[1]
        claims, key, principal = await _verify_split(jws, kid, settings, self.keys, now)
        if known is None:
            if len(self._headers) >= self._max:
                self._headers.clear()
            self._headers[segment] = (jws.header, kid)
        if digest:
            if len(self._verified) >= self._max_verified:
                # The oldest entry goes first (dicts keep insertion order).
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = (claims, kid, key)
        return principal
