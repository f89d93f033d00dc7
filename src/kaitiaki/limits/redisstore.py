"""Counters shared in Redis, for several gateway processes or machines.

Each decision is one ``EVALSHA`` of :data:`kaitiaki.limits.scripts.DECIDE`:
Redis runs a script alone, so admitted requests never exceed a limit however
many gateways ask at once. Any failure to reach Redis becomes
:class:`kaitiaki.errors.StoreUnavailable`; the caller decides what then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from kaitiaki.errors import StoreUnavailable
from kaitiaki.limits.checks import Check, Verdict
from kaitiaki.limits.scripts import DECIDE, RELEASE

__all__ = ["RedisStore"]


def _argument(checks: Sequence[Check], now: float | None) -> str:
    return "|".join(
        ["redis" if now is None else repr(now)]
        + [
            f"{c.kind} {c.limit} {c.cost} {c.interval!r} {c.ends_at!r} {c.slices} "
            f"{c.lease or '-'}"
            for c in checks
        ]
    )


class RedisStore:
    """One client with a small pool; scripts are loaded on first use."""

    def __init__(
        self, url: str, *, prefix: str, timeout: float, server_clock: bool = True
    ) -> None:
        self._prefix = prefix
        # Redis' clock by default: replicas whose clocks differ would
        # otherwise see a bucket started by a clock ahead of theirs as fuller.
        self._server_clock = server_clock
        # One quick retry covers a pooled connection that Redis closed while
        # idle; anything longer would hold requests while Redis is down.
        self.client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        # The script cache key Redis itself uses, not a security measure.
        self._sha = hashlib.sha1(DECIDE.encode(), usedforsecurity=False).hexdigest()
        self._release = self.client.register_script(RELEASE)

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        keys = [self._prefix + check.key for check in checks]
        argument = _argument(checks, None if self._server_clock else now)
        try:
            try:
                raw = await self.client.evalsha(self._sha, len(keys), *keys, argument)
            except NoScriptError:
                # Redis restarted or its script cache was flushed.
                self._sha = await self.client.script_load(DECIDE)
                raw = await self.client.evalsha(self._sha, len(keys), *keys, argument)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        fields = raw.split()
        return Verdict(
            fields[0] == b"1",
            int(fields[1]),
            tuple(map(int, fields[2::2])),
            tuple([int(value) * 1e-9 for value in fields[3::2]]),
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
