"""The JWKS cache: single flight, cool-down, bounded stale grace, fail closed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.errors import DependencyUnavailable
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.jwks import JwksCache, lifetime, parse_keys
from kaitiaki.tokens.keys import VerificationKey, import_public_key
from kaitiaki.tokens.metadata import check_endpoint
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
            # The first unknown kid may be a rotation: one fetch, shared.
            assert len(hits) == 2
            clock.now += 30
            assert await cache.get("kid-again") is None
            assert len(hits) == 2
            clock.now += 31
            assert await cache.get("kid-new") is None
            assert len(hits) == 3


def _rotating_issuer(keys: list[ECKey], hits: list[int], port: int) -> Starlette:
    url = f"http://127.0.0.1:{port}"

    async def discovery(request: Request) -> Response:
        return JSONResponse({"issuer": url, "jwks_uri": f"{url}/jwks"})

    async def jwks(request: Request) -> Response:
        hits.append(1)
        document = {"keys": [k.as_dict(private=False) for k in keys]}
        return JSONResponse(document, headers={"cache-control": "max-age=300"})

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
        ]
    )


async def test_jwks_a_rotated_key_is_fetched_at_once_then_storms_wait() -> None:
    """JWT-13: a token signed with a newly published key is accepted after one
    refetch, however soon after the last fetch; forged kids after it cost
    nothing more within the cool-down."""
    old = ECKey.generate_key("P-256", auto_kid=True)
    new = ECKey.generate_key("P-256", auto_kid=True)
    keys, hits, port, clock = [old], [], free_port(), Clock()
    with ThreadServer(_rotating_issuer(keys, hits, port), port) as server:
        async with aiohttp.ClientSession() as session:
            cache = JwksCache(_settings(server.url), session, clock)
            assert await cache.get(str(old.kid)) is not None
            keys.append(new)  # the issuer publishes, then signs with it
            clock.now += 5
            assert await cache.get(str(new.kid)) is not None
            assert len(hits) == 2
            clock.now += 1
            forged = await asyncio.gather(*(cache.get(f"x-{n}") for n in range(200)))
            assert forged == [None] * 200
            assert await cache.get(str(old.kid)) is not None
            assert len(hits) == 2


async def test_jwks_callers_during_the_first_fetch_wait_for_it() -> None:
    """A cold cache under concurrent load: one fetch, and every caller gets the
    key (none is refused because another caller's fetch was still running)."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    hits: list[int] = []
    port = free_port()
    with ThreadServer(issuer_app(key, hits, port), port) as server:
        async with aiohttp.ClientSession() as session:
            cache = JwksCache(_settings(server.url), session, Clock())
            results = await asyncio.gather(
                *(cache.get(str(key.kid)) for _ in range(50)), return_exceptions=True
            )
    assert [r for r in results if not isinstance(r, VerificationKey)] == []
    assert len(hits) == 1


async def test_jwks_known_key_is_served_stale_while_a_refetch_hangs() -> None:
    """Past the keys' lifetime, within the grace period, a hanging issuer
    must stall no request whose key is known: only the refetching one waits."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    port = free_port()
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        with ThreadServer(issuer_app(key, [], port), port) as server:
            cache = JwksCache(_settings(server.url), session, clock)
            assert await cache.get(str(key.kid)) is not None
        clock.now += 350  # expired (max-age 300), within the 100 s grace
        release = asyncio.Event()

        async def hanging() -> object:
            await release.wait()
            raise aiohttp.ClientError("the issuer hung up")

        cache._fetch = hanging  # type: ignore[method-assign,assignment]
        first = asyncio.create_task(cache.get(str(key.kid)))
        await asyncio.sleep(0.01)
        assert cache._lock.locked()
        second = await asyncio.wait_for(cache.get(str(key.kid)), timeout=1)
        assert isinstance(second, VerificationKey)
        release.set()
        assert isinstance(await first, VerificationKey)


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


class Headers(dict[str, str]):
    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name, default)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Cache-Control": "public, max-age=600"}, 600),
        ({"Cache-Control": "max-age=600", "Age": "500"}, 100),
        ({"Cache-Control": "max-age=5"}, 60),
        ({"Cache-Control": "max-age=999999"}, 3600),
        ({"Cache-Control": "no-store"}, 60),
        ({"Cache-Control": "no-cache, max-age=600"}, 60),
        ({"Cache-Control": "s-maxage=600"}, 3600),
        (
            {
                "Expires": "Thu, 01 Jan 2026 00:20:00 GMT",
                "Date": "Thu, 01 Jan 2026 00:00:00 GMT",
            },
            1200,
        ),
        ({"Expires": "garbage", "Date": "also garbage"}, 3600),
        ({}, 3600),
    ],
)
def test_jwks_lifetime_from_cache_headers(
    headers: dict[str, str], seconds: int
) -> None:
    assert lifetime(Headers(headers), 60, 3600) == seconds


@pytest.mark.parametrize(
    "document",
    [
        {"keys": []},
        {"keys": "x"},
        {},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]},
        {
            "keys": [{"kid": "a", **ECKey.generate_key("P-256").as_dict(private=False)}]
            * 2
        },
        {"keys": [ECKey.generate_key("P-256").as_dict(private=False)] * 65},
    ],
)
def test_jwks_unusable_documents_are_failures(document: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        parse_keys(document)


@pytest.mark.parametrize(
    ("issuer", "url", "ok"),
    [
        ("https://as.example", "https://as.example/jwks", True),
        ("https://as.example", "http://as.example/jwks", False),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090/jwks", True),
        ("https://as.example", None, False),
        ("https://as.example", "file:///etc/passwd", False),
    ],
)
def test_jwks_endpoint_scheme(issuer: str, url: str | None, ok: bool) -> None:
    if ok:
        assert check_endpoint(issuer, url) == url
    else:
        with pytest.raises(ValueError):
            check_endpoint(issuer, url)


async def test_jwks_stale_keys_are_counted_and_alerted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    port = free_port()
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        with ThreadServer(issuer_app(key, [], port), port) as server:
            cache = JwksCache(_settings(server.url), session, clock)
            assert await cache.get(str(key.kid)) is not None
        clock.now += 301
        with caplog.at_level("WARNING", logger="kaitiaki.alerts"):
            assert await cache.get(str(key.kid)) is not None
        assert cache.stats.stale_served == 1
        assert cache.stats.failures == 1
        assert any("jwks_stale" in record.getMessage() for record in caplog.records)
        assert await cache.get("unknown") is None  # never widened on error
