"""The JWKS cache: single flight, cool-down, bounded stale grace, fail closed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from joserfc.jwk import ECKey

from kaitiaki.errors import DependencyUnavailable
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.jwks import JwksCache
from kaitiaki.tokens.keys import import_public_key
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import issuer_app

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _settings(url: str) -> AuthSettings:
    return AuthSettings(
        issuer=url,
        audience="aud",
        jwks_min_refresh_seconds=60,
        jwks_max_age_seconds=300,
        jwks_stale_grace_seconds=100,
    )


async def test_jwks_concurrent_unknown_kids_fetch_once() -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    hits: list[int] = []
    port = free_port()
    clock = Clock()
    with ThreadServer(issuer_app(key, hits, port), port) as server:
        async with aiohttp.ClientSession() as session:
            cache = JwksCache(_settings(server.url), session, clock)
            assert await cache.get(str(key.kid)) is not None
            results = await asyncio.gather(*(cache.get(f"kid-{n}") for n in range(500)))
            assert all(result is None for result in results)
            assert len(hits) == 1
            clock.now += 61
            assert await cache.get("kid-new") is None
            assert len(hits) == 2


async def test_jwks_serves_stale_keys_then_fails_closed() -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    port = free_port()
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        with ThreadServer(issuer_app(key, [], port), port) as server:
            cache = JwksCache(_settings(server.url), session, clock)
            assert await cache.get(str(key.kid)) is not None
        clock.now += 350  # expired, issuer gone, within the grace period
        assert await cache.get(str(key.kid)) is not None
        assert cache.fetch_failures == 1
        clock.now += 100  # past max age plus grace
        with pytest.raises(DependencyUnavailable):
            await cache.get(str(key.kid))


async def test_jwks_never_fetched_fails_closed() -> None:
    async with aiohttp.ClientSession() as session:
        cache = JwksCache(
            _settings(f"http://127.0.0.1:{free_port()}"), session, Clock()
        )
        with pytest.raises(DependencyUnavailable):
            await cache.get("any")


@pytest.mark.parametrize(
    ("jwk", "algorithms"),
    [
        ({"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, None),
        ({**ECKey.generate_key("P-256").as_dict(private=False), "use": "enc"}, None),
        ({**ECKey.generate_key("P-256").as_dict(private=False), "alg": "ES384"}, None),
        (ECKey.generate_key("P-384").as_dict(private=False), {"ES384"}),
        (ECKey.generate_key("P-256").as_dict(private=True), {"ES256"}),
    ],
)
def test_import_key_fixes_algorithm_by_key(
    jwk: dict[str, str], algorithms: set[str] | None
) -> None:
    imported = import_public_key(jwk)
    if algorithms is None:
        assert imported is None
    else:
        assert imported is not None
        assert imported.algorithms == algorithms
        assert not imported.key.is_private
