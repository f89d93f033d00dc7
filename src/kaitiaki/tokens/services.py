"""Open the token services the authenticate step uses, from the settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.introspection import Introspector
from kaitiaki.tokens.jwt import JwtVerifier, KeySource
from kaitiaki.tokens.nonce import DpopNonces
from kaitiaki.tokens.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from kaitiaki.tokens.secretref import resolve_secret

__all__ = ["TokenServices", "open_token_services"]


@dataclass(slots=True)
class TokenServices:
    """The I/O the authenticate step needs, opened once by the gateway."""

    jwt: JwtVerifier
    introspector: Introspector | None
    replay: ReplayCache
    nonces: DpopNonces


def open_token_services(
    auth: AuthSettings,
    session: aiohttp.ClientSession,
    keys: KeySource,
    clock: Callable[[], float],
    environ: Mapping[str, str],
) -> TokenServices:
    """JWKS keys, introspection, the DPoP replay store and nonces."""
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
