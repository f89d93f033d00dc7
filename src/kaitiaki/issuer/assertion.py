"""Client authentication by ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9).

Pure: the caller passes ``now``; the replay cache is owned by the app.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from kaitiaki.issuer.refusals import InvalidClient
from kaitiaki.issuer.state import RegisteredClient

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "ReplayCache",
    "verify_client_assertion",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: An assertion may be valid for at most this long from now.
MAX_ASSERTION_LIFETIME = 300
#: Tolerated clock difference between client and issuer.
LEEWAY = 30
MAX_ASSERTION_BYTES = 8192
MAX_JTI_LENGTH = 256


class ReplayCache:
    """The ``jti`` values seen per client, each kept until its ``exp``.

    Bounded: when full of unexpired entries it refuses new assertions rather
    than forget one, so a flood cannot reopen the door to a replay.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._seen: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, client_id: str, jti: str, exp: int, *, now: int) -> None:
        """Record a ``jti``; raise :class:`InvalidClient` if seen or full."""
        key = (client_id, jti)
        if key in self._seen:
            raise InvalidClient("the client assertion was already used")
        if len(self._seen) >= self.capacity:
            self._seen = {k: v for k, v in self._seen.items() if v + LEEWAY >= now}
        if len(self._seen) >= self.capacity:
            raise InvalidClient("too many client assertions in flight; retry later")
        self._seen[key] = exp


def _unverified_issuer(assertion: str) -> str:
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise InvalidClient("the client assertion is too large")
    try:
        payload = jws.extract_compact(assertion.encode("ascii")).payload
        claims = json.loads(payload or b"")
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidClient("the client assertion is not a JWT") from exc
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str):
        raise InvalidClient("the client assertion has no issuer")
    return issuer


def _int_claim(claims: Mapping[str, Any], name: str, default: int | None) -> int:
    value = claims.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidClient(f"the client assertion needs an integer {name}")
    return value


def _check_identity(
    claims: Mapping[str, Any], client_id: str, audiences: Collection[str]
) -> None:
    if claims.get("sub") != client_id:
        raise InvalidClient("the client assertion's sub must equal its iss")
    audience = claims.get("aud")
    named = [audience] if isinstance(audience, str) else audience
    if not isinstance(named, list) or not any(
        isinstance(item, str) and item in audiences for item in named
    ):
        raise InvalidClient("the client assertion's aud does not name this server")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise InvalidClient("the client assertion needs a jti")


def _check_times(claims: Mapping[str, Any], now: int) -> int:
    exp = _int_claim(claims, "exp", None)
    iat = _int_claim(claims, "iat", None)
    nbf = _int_claim(claims, "nbf", now)
    if exp + LEEWAY <= now:
        raise InvalidClient("the client assertion has expired")
    if exp > now + MAX_ASSERTION_LIFETIME + LEEWAY:
        raise InvalidClient("the client assertion's exp is too far ahead")
    if iat > now + LEEWAY or nbf > now + LEEWAY:
        raise InvalidClient("the client assertion is not yet valid")
    return exp


def verify_client_assertion(
    assertion: str,
    clients: Mapping[str, RegisteredClient],
    *,
    audiences: Collection[str],
    now: int,
    replay_cache: ReplayCache,
) -> RegisteredClient:
    """Authenticate the client that signed ``assertion`` or raise InvalidClient.

    The key and its algorithm come from the registry entry of the claimed
    client; the assertion's own header never chooses them.
    """
    client = clients.get(_unverified_issuer(assertion))
    if client is None:
        raise InvalidClient("unknown client")

    try:
        token = jwt.decode(assertion, client.public_key, algorithms=[client.algorithm])
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidClient("the client assertion's signature is not valid") from exc

    _check_identity(token.claims, client.client_id, audiences)
    exp = _check_times(token.claims, now)
    replay_cache.remember(client.client_id, token.claims["jti"], exp, now=now)
    return client
