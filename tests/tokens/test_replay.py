"""One contract for every DPoP replay store: memory and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from kaitiaki.errors import DependencyUnavailable
from kaitiaki.tokens.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from tests.conftest import backends_required, free_port

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _redis_available() -> bool:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await client.aclose()


async def _require_redis() -> None:
    if not await _redis_available():
        if backends_required():
            pytest.fail("Redis at 127.0.0.1:6379 is required")
        pytest.skip("Redis not running")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ReplayCache]:
    if request.param == "memory":
        yield MemoryReplayCache(1000, Clock())
        return
    await _require_redis()
    prefix = f"kaitiaki-test:{uuid.uuid4().hex}:"
    cache = RedisReplayCache(REDIS_URL, prefix)
    yield cache
    await cache.close()
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_replay_store_accepts_first_use_only(store: ReplayCache) -> None:
    assert await store.first_use("jkt:jti-1", 60)
    assert not await store.first_use("jkt:jti-1", 60)
    assert await store.first_use("jkt:jti-2", 60)


async def test_memory_replay_store_forgets_after_ttl() -> None:
    clock = Clock()
    cache = MemoryReplayCache(1000, clock)
    assert await cache.first_use("a", 10)
    clock.now += 11
    assert await cache.first_use("a", 10)


async def test_memory_replay_store_full_fails_closed() -> None:
    clock = Clock()
    cache = MemoryReplayCache(100, clock)
    for index in range(100):
        assert await cache.first_use(f"k{index}", 60)
    with pytest.raises(DependencyUnavailable):
        await cache.first_use("one-more", 60)
    clock.now += 61  # everything expired: room again
    assert await cache.first_use("one-more", 60)


@pytest.mark.redis
async def test_redis_replay_store_down_fails_closed() -> None:
    cache = RedisReplayCache(f"redis://127.0.0.1:{free_port()}/0", "kaitiaki-test:")
    with pytest.raises(DependencyUnavailable):
        await cache.first_use("a", 60)
    await cache.close()


@pytest.mark.redis
async def test_redis_replay_keys_expire() -> None:
    await _require_redis()
    prefix = f"kaitiaki-test:{uuid.uuid4().hex}:"
    cache = RedisReplayCache(REDIS_URL, prefix)
    assert await cache.first_use("expiring", 30)
    await cache.close()
    client = aioredis.Redis.from_url(REDIS_URL)
    ttl = await client.ttl(prefix + "expiring")
    await client.delete(prefix + "expiring")
    await client.aclose()
    assert 0 < ttl <= 30
