"""Verify a JWT access token (RFC 9068) and turn it into a :class:`Principal`.

The order matters: size and shape are checked before any base64 decoding,
the header before any key lookup, the key's algorithm before the signature,
and the claims only after the signature. The algorithm comes from the key
and the allow-list, never from the token: ``none`` and HMAC cannot verify.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from kaitiaki.errors import ExpiredToken, InvalidToken
from kaitiaki.settings import AuthSettings
from kaitiaki.strictjson import StrictJSONError, loads_strict
from kaitiaki.tokens.jwks import JwksCache

__all__ = ["Principal", "check_claims", "read_header", "verify_access_token"]

_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_KID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
_KEY_LOCATORS = ("jku", "x5u", "jwk", "x5c")
_AT_JWT = ("at+jwt", "application/at+jwt")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by a verified access token."""

    issuer: str
    subject: str
    client_id: str
    scope: str
    token_id: str | None
    expires_at: int
    # Context for authorisation: the SMART launch patient, the assurance level,
    # and whether the token was issued to the client itself (no end user).
    patient: str | None = None
    acr: str | None = None
    client_credentials: bool = False


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _is_client_credentials(claims: dict[str, Any], client_id: str) -> bool:
    """No end user: a grant-type claim says so, or ``sub`` is absent or the client.

    Keycloak names a client's service account ``service-account-<client>``;
    Entra ID marks app-only tokens with the optional claim ``idtyp`` ``app``.
    """
    grant = _text(claims, "gty") or _text(claims, "grant_type")
    if grant is not None:
        return grant in ("client_credentials", "client-credentials")
    kind = _text(claims, "idtyp")
    if kind is not None:
        return kind == "app"
    subject = _text(claims, "sub")
    username = _text(claims, "preferred_username") or ""
    return (
        subject is None
        or subject == client_id
        or username.startswith("service-account-")
    )


def _refuse(detail: str) -> InvalidToken:
    return InvalidToken("The access token is not valid.", detail=detail)


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        value = loads_strict(raw, max_depth=16)
    except StrictJSONError as exc:
        raise _refuse(f"token_{exc.reason}") from exc
    if not isinstance(value, dict):
        raise _refuse("token_not_object")
    return value


def _decode_segment(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _refuse("token_bad_base64") from exc
    return _parse_object(raw)


def read_header(token: str, settings: AuthSettings) -> tuple[dict[str, Any], str]:
    """Check shape and header; return the header and the ``kid`` to look up."""
    if len(token) > settings.max_token_bytes:
        raise _refuse("token_too_large")
    if not _COMPACT.fullmatch(token):
        raise _refuse("token_not_compact_jws")

    header = _decode_segment(token.split(".", 1)[0])
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.allowed_algorithms():
        raise _refuse("alg_not_allowed")
    if "crit" in header:
        raise _refuse("crit_not_understood")
    if any(name in header for name in _KEY_LOCATORS):
        raise _refuse("key_locator_header")
    if settings.require_at_jwt_typ and header.get("typ") not in _AT_JWT:
        raise _refuse("typ_not_at_jwt")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise _refuse("kid_invalid")
    return header, kid


def _number(claims: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"{name}_invalid")
    return int(value)


def check_claims(claims: dict[str, Any], settings: AuthSettings, now: int) -> Principal:
    """Check the registered claims of a signature-verified token at ``now``."""
    leeway = settings.leeway_seconds
    if claims.get("iss") != settings.issuer:
        raise _refuse("iss_mismatch")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.audience not in audiences:
        raise _refuse("aud_mismatch")

    expires = _number(claims, "exp", required=True)
    not_before = _number(claims, "nbf", required=False)
    issued = _number(claims, "iat", required=False)
    if expires is None or expires + leeway <= now:
        raise ExpiredToken("The access token has expired.", detail="expired")
    if not_before is not None and not_before - leeway > now:
        raise _refuse("not_yet_valid")
    if issued is not None and issued - leeway > now:
        raise _refuse("issued_in_future")
    if expires - (issued if issued is not None else now) > (
        settings.max_token_lifetime_seconds
    ):
        raise _refuse("lifetime_too_long")

    client_id = claims.get("client_id", claims.get("azp"))
    subject = claims.get("sub", client_id)
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, list) and all(isinstance(item, str) for item in scope):
        scope = " ".join(scope)
    if not isinstance(client_id, str) or not isinstance(subject, str):
        raise _refuse("client_missing")
    if not isinstance(scope, str):
        raise _refuse("scope_invalid")
    token_id = claims.get("jti")
    return Principal(
        issuer=settings.issuer,
        subject=subject,
        client_id=client_id,
        scope=scope,
        token_id=token_id if isinstance(token_id, str) else None,
        expires_at=expires,
        patient=_text(claims, "patient"),
        acr=_text(claims, "acr"),
        client_credentials=_is_client_credentials(claims, client_id),
    )


async def verify_access_token(
    token: str, settings: AuthSettings, keys: JwksCache, now: int
) -> Principal:
    """Verify ``token`` completely; raise :class:`InvalidToken` on any fault."""
    header, kid = read_header(token, settings)
    found = await keys.get(kid)
    if found is None:
        raise _refuse("kid_unknown")
    alg = header["alg"]
    if alg not in found.algorithms:
        raise _refuse("alg_not_for_key")

    try:
        verified = jws.deserialize_compact(token, found.key, algorithms=[alg])
    except (JoseError, ValueError) as exc:
        raise _refuse("bad_signature") from exc
    return check_claims(_parse_object(verified.payload), settings, now)
