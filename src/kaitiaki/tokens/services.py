"""Open the token services the authenticate step uses, from the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.dpop import ProofKeys
from kaitiaki.tokens.introspection import Introspector
from kaitiaki.tokens.jwt import JwtVerifier, KeySource
from kaitiaki.tokens.nonce import DpopNonces
from kaitiaki.tokens.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from kaitiaki.tokens.secretref import SecretSource, resolve_secret

__all__ = ["TokenServices", "open_token_services", "weaker_modes"]

logger = logging.getLogger("kaitiaki.tokens")


@dataclass(slots=True)
class TokenServices:
    """The I/O the authenticate step needs, opened once by the gateway."""

    jwt: JwtVerifier
    introspector: Introspector | None
    replay: ReplayCache
    nonces: DpopNonces
    proof_keys: ProofKeys = field(default_factory=ProofKeys)


def weaker_modes(auth: AuthSettings) -> list[str]:
    """The named compatibility settings that are on: each is logged at start-up."""
    modes = []
    if auth.allow_rs256 and "RS256" in auth.algorithms:
        modes.append("allow_rs256: RS256 access tokens are accepted")
    if not auth.require_at_jwt_typ:
        modes.append("require_at_jwt_typ off: typ JWT/Bearer and no iat accepted")
    introspection = auth.introspection
    if introspection is not None and introspection.auth_method == "client_secret_basic":
        modes.append("introspection with client_secret_basic (a shared secret)")
    if introspection is not None and not introspection.require_audience:
        modes.append("introspection answers without aud are accepted")
    return modes


def open_token_services(
    auth: AuthSettings,
    session: aiohttp.ClientSession,
    keys: KeySource,
    clock: Callable[[], float],
    environ: SecretSource,
) -> TokenServices:
    """JWKS keys, introspection, the DPoP replay store and nonces."""
    for mode in weaker_modes(auth):
        logger.warning("token setting: %s", mode)
    dpop = auth.dpop
    replay: ReplayCache
    if dpop.replay_store == "redis":
        replay = RedisReplayCache(dpop.redis_url, dpop.redis_prefix)
    else:
        replay = MemoryReplayCache(dpop.max_replay_entries, clock)
    secret = None
    if dpop.nonce_secret:
        secret = resolve_secret(
            dpop.nonce_secret, environ, setting="auth.dpop.nonce_secret"
        ).encode()
    introspector = None
    if auth.introspection is not None:
        introspector = Introspector(auth, session, environ)
    return TokenServices(
        jwt=JwtVerifier(auth, keys),
        introspector=introspector,
        replay=replay,
        nonces=DpopNonces(secret, dpop.nonce_lifetime_seconds),
    )
