"""Forged credentials for the authentication checks.

The probe holds no key of the target's issuer, so every forgery is either
unsigned, MACed with the issuer's *public* key, or signed by a throwaway key
of the probe's own. A correct resource server must refuse each of them; a
refusal of, say, the expired token therefore shows that forged tokens are
refused, not that ``exp`` on its own is checked. That limit is stated in the
report next to each such check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey, import_key

__all__ = [
    "Forger",
    "b64url",
    "dpop_proof",
    "public_key_pem",
]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _segment(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data, separators=(",", ":")).encode())


def public_key_pem(jwk: dict[str, Any]) -> bytes | None:
    """The SubjectPublicKeyInfo PEM of a public JWK, as a confused verifier
    would use it for an HMAC secret; None for keys we cannot load."""
    try:
        key = import_key(jwk)
        public: Any = getattr(key, "public_key", None)
        pem: bytes = public.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    except (ValueError, TypeError, AttributeError):
        return None
    return pem


class Forger:
    """Builds the forged tokens, all with plausible claims for the target."""

    def __init__(self, issuer: str, audience: str, kid: str | None) -> None:
        self.issuer, self.audience, self.kid = issuer, audience, kid
        self.key = ECKey.generate_key("P-256", auto_kid=True)

    def claims(self, now: int, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "kaitiaki-probe",
            "client_id": "kaitiaki-probe",
            "scope": "system/*.rs",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def signed(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        """Signed by the probe's own key, under the issuer's ``kid`` unless told."""
        header = {"alg": "ES256", "typ": "at+jwt", "kid": kid or self.kid or "k1"}
        return jwt.encode(header, claims, self.key)

    def unsigned(self, claims: dict[str, Any], alg: str = "none") -> str:
        header = {"alg": alg, "typ": "at+jwt"}
        return f"{_segment(header)}.{_segment(claims)}."

    def hmac_with(self, claims: dict[str, Any], secret: bytes) -> str:
        """HS256 MACed with ``secret`` (the issuer's public key text)."""
        header = {"alg": "HS256", "typ": "at+jwt", "kid": self.kid or "k1"}
        signing_input = f"{_segment(header)}.{_segment(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"


def dpop_proof(
    key: ECKey, method: str, url: str, *, now: int, access_token: str | None = None
) -> str:
    """An RFC 9449 DPoP proof for one request."""
    header = {
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": key.as_dict(private=False),
    }
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": url.split("?", 1)[0],
        "iat": now,
    }
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = b64url(digest)
    return jwt.encode(header, claims, key)
