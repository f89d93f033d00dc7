"""Replay caches for DPoP proof ``jti`` values: memory, or Redis for replicas.

``first_use(key, ttl)`` is true exactly once per key within ``ttl``. Both
stores fail closed: a full memory cache or an unreachable Redis refuses the
request with 503 rather than forget what was already seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kaitiaki.errors import DependencyUnavailable

__all__ = ["MemoryReplayCache", "RedisReplayCache", "ReplayCache"]

logger = logging.getLogger("kaitiaki.tokens.replay")


def _unavailable(detail: str) -> DependencyUnavailable:
    return DependencyUnavailable(
        "The proof-of-possession check is unavailable; try again later.",
        detail=detail,
        headers={"Retry-After": "5"},
    )


class ReplayCache(Protocol):
    async def first_use(self, key: str, ttl_seconds: int) -> bool: ...

    async def close(self) -> None: ...


class MemoryReplayCache:
    """One process's seen keys, bounded; expiry order is insertion order."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._seen: dict[str, float] = {}
        self._max = max_entries
        self._clock = clock

    def _purge(self, now: float) -> None:
        for key, expires in list(self._seen.items()):
            if expires > now:
                break
            del self._seen[key]

    async def first_use(self, key: str, ttl_seconds: int) -> bool:
        now = self._clock()
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        if len(self._seen) >= self._max:
            self._purge(now)
            if len(self._seen) >= self._max:
                raise _unavailable("replay_cache_full")
        self._seen.pop(key, None)
        self._seen[key] = now + ttl_seconds
        return True

    async def close(self) -> None:
        self._seen.clear()


class RedisReplayCache:
    """Seen keys shared by every replica: ``SET key 1 NX EX ttl``."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2
        )
        self._prefix = prefix

    async def first_use(self, key: str, ttl_seconds: int) -> bool:
        try:
            stored = await self._client.set(
                self._prefix + key, b"1", nx=True, ex=ttl_seconds
            )
        except (RedisError, OSError) as exc:
            logger.warning("DPoP replay store unavailable: %s", type(exc).__name__)
            raise _unavailable("replay_store_unavailable") from exc
        return bool(stored)

    async def close(self) -> None:
        await self._client.aclose()
