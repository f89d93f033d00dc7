"""The gateway's signed assertion to the upstream: proof the request came
through the gateway, so an upstream can refuse traffic that bypassed it.

A compact JWT (ES256 or whatever curve the key file holds), header
``typ=kaitiaki-gw+jwt``; claims ``iss`` (gateway instance), ``aud`` (the
upstream), ``iat``, ``exp`` (at most 60 s later), a unique ``jti``, and
``sub`` (the authenticated client id, when there is one). The key is a private
JWK file of mode 0600, read with :func:`kaitiaki.issuer.keys.load_private_key`.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key

from kaitiaki.errors import ConfigError, Forbidden
from kaitiaki.issuer.keys import algorithm_for, load_private_key, load_public_key

__all__ = ["MAX_LIFETIME", "AssertionSigner", "AssertionVerifier"]

TYP = "kaitiaki-gw+jwt"
MAX_LIFETIME = 60


class AssertionSigner:
    def __init__(
        self,
        key_path: str,
        *,
        issuer: str,
        audience: str,
        lifetime: int,
        header: str = "kaitiaki-gateway-assertion",
    ) -> None:
        if lifetime > MAX_LIFETIME:
            raise ConfigError(
                f"upstream_auth.assertion_lifetime_seconds: at most {MAX_LIFETIME}"
            )
        self.key = load_private_key(Path(key_path))
        self.algorithm = algorithm_for(self.key)
        self.issuer, self.audience, self.lifetime = issuer, audience, lifetime
        self.header = header.lower()

    def sign(self, now: int, subject: str | None) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": str(uuid.uuid4()),
        }
        if subject is not None:
            claims["sub"] = subject
        header = {"alg": self.algorithm, "typ": TYP, "kid": self.key.kid}
        return jwt.encode(header, claims, self.key)


class AssertionVerifier:
    """Checks an assertion on the upstream side (the reference API uses it)."""

    def __init__(self, key: Key, *, audience: str, leeway: int = 5) -> None:
        self.key, self.audience, self.leeway = key, audience, leeway
        self.algorithm = algorithm_for(key)
        self._seen: OrderedDict[str, int] = OrderedDict()

    @classmethod
    def from_file(cls, path: str, *, audience: str) -> AssertionVerifier:
        """Load the gateway's public JWK (a JSON file) or its private key file."""
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the gateway assertion key") from exc
        if isinstance(data, dict) and "d" in data:
            return cls(load_private_key(Path(path)), audience=audience)
        return cls(load_public_key(data, source=path), audience=audience)

    def verify(self, token: str | None, now: int) -> dict[str, Any]:
        if not token or len(token) > 4096:
            raise _refused()
        try:
            decoded = jwt.decode(token, self.key, algorithms=[self.algorithm])
        except (JoseError, ValueError) as exc:
            raise _refused() from exc
        claims = decoded.claims
        if decoded.header.get("typ") != TYP or not self._fresh(claims, now):
            raise _refused()
        return claims

    def _fresh(self, claims: dict[str, Any], now: int) -> bool:
        iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
        if not (isinstance(iat, int) and isinstance(exp, int) and isinstance(jti, str)):
            return False
        if claims.get("aud") != self.audience or exp - iat > MAX_LIFETIME:
            return False
        if not iat - self.leeway <= now < exp + self.leeway:
            return False
        while self._seen and next(iter(self._seen.values())) < now - self.leeway:
            self._seen.popitem(last=False)
        if jti in self._seen:
            return False
        self._seen[jti] = exp
        return True


def _refused() -> Forbidden:
    return Forbidden(
        "Requests must come through the gateway.", detail="gateway_assertion"
    )
