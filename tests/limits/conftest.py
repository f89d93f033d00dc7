"""Stores under test: memory and the shared Redis (unique key prefix per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from kaitiaki.limits.checks import LimitStore
from kaitiaki.limits.memory import MemoryStore
from kaitiaki.limits.redisstore import RedisStore
from tests.redis_support import (
    SHARED_REDIS,
    OwnRedis,
    delete_prefix,
    own_redis_server,
    require_redis,
    unique_prefix,
)

__all__ = ["OwnRedis"]


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    yield from own_redis_server()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_redis()
    prefix = unique_prefix()
    yield prefix
    delete_prefix(SHARED_REDIS, prefix)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LimitStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    require_redis()
    prefix = unique_prefix()
    # The contract injects time, so the store takes the caller's clock.
    backend = RedisStore(SHARED_REDIS, prefix=prefix, timeout=2.0, server_clock=False)
    try:
        yield backend
    finally:
        await backend.close()
        delete_prefix(SHARED_REDIS, prefix)
