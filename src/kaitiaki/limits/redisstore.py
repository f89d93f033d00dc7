"""Counters shared in Redis, for several gateway processes or machines.

Each decision is one ``EVALSHA`` of :data:`kaitiaki.limits.scripts.DECIDE`:
Redis runs a script alone, so admitted requests never exceed a limit however
many gateways ask at once. Any failure to reach Redis becomes
:class:`kaitiaki.errors.StoreUnavailable`; the caller decides what then.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from kaitiaki.errors import StoreUnavailable
from kaitiaki.limits.checks import Check, Verdict
from kaitiaki.limits.scripts import DECIDE, RELEASE

__all__ = ["RedisStore"]


def _arguments(checks: Sequence[Check], now: float) -> list[str | int]:
    args: list[str | int] = [repr(now)]
    for check in checks:
        args += [
            check.kind,
            check.limit,
            check.cost,
            repr(check.interval),
            repr(check.ends_at),
            check.slices,
            check.lease or "-",
        ]
    return args


class RedisStore:
    """One client with a small pool; scripts are loaded on first use."""

    def __init__(self, url: str, *, prefix: str, timeout: float) -> None:
        self._prefix = prefix
        # One quick retry covers a pooled connection that Redis closed while
        # idle; anything longer would hold requests while Redis is down.
        self.client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        self._decide = self.client.register_script(DECIDE)
        self._release = self.client.register_script(RELEASE)

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        keys = [self._prefix + check.key for check in checks]
        try:
            raw = await self._decide(keys=keys, args=_arguments(checks, now))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        pairs = raw[2:]
        return Verdict(
            admitted=raw[0] == 1,
            failed=int(raw[1]),
            remaining=tuple(int(value) for value in pairs[0::2]),
            reset=tuple(float(value) for value in pairs[1::2]),
        )

    async def release(self, checks: Sequence[Check]) -> None:
        leases = [check for check in checks if check.kind == "concurrency"]
        if not leases:
            return
        try:
            await self._release(
                keys=[self._prefix + check.key for check in leases],
                args=[check.lease for check in leases],
            )
        except (RedisError, OSError) as exc:
            # The lease expires by itself after concurrency_lease_seconds.
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        """One bare round trip (the benchmark's anchor)."""
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
