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

# A check as the script reads it, but for its lease: kind, limit, cost,
# interval, ends_at, slices. Policies, costs and window ends are few, so
# shapes are too; the bound only caps a surprise.
Shape = tuple[str, int, int, float, float, int]
_SHAPES_KEPT = 4096


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
        # The script cache key Redis itself uses, not a security measure; as
        # bytes, like the command name, so redis-py packs them as they are.
        self._sha = hashlib.sha1(DECIDE.encode(), usedforsecurity=False).hexdigest()
        self._evalsha = (b"EVALSHA", self._sha.encode())
        self._release = self.client.register_script(RELEASE)
        # Each shape's text, formatted once: a float's repr is the dearest part
        # of the argument, and a decision should cost little beside its round trip.
        self._shapes: dict[Shape, str] = {}

    def _pack(self, checks: Sequence[Check], clock: str) -> tuple[list[bytes], bytes]:
        """A decision's keys and its one argument, as bytes (which redis-py's
        encoder passes through untouched)."""
        prefix, shapes = self._prefix, self._shapes
        keys, parts = [], [clock]
        for kind, key, _, _, limit, cost, interval, ends_at, slices, lease in checks:
            keys.append((prefix + key).encode())
            shape = (kind, limit, cost, interval, ends_at, slices)
            text = shapes.get(shape)
            if text is None:
                if len(shapes) >= _SHAPES_KEPT:
                    shapes.clear()
                text = f"{kind} {limit} {cost} {interval!r} {ends_at!r} {slices}"
                shapes[shape] = text
            parts += (text, lease or "-")
        return keys, " ".join(parts).encode()

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        keys, argument = self._pack(
            checks, "redis" if self._server_clock else repr(now)
        )
        # EVALSHA through the untyped call: the typed one converts the digest
        # and the key count on every decision.
        command = (*self._evalsha, b"%d" % len(keys), *keys, argument)
        try:
            try:
                raw = await self.client.execute_command(*command)  # type: ignore[no-untyped-call]
            except NoScriptError:
                # Redis restarted or its script cache was flushed.
                await self.client.script_load(DECIDE)
                raw = await self.client.execute_command(*command)  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        fields = raw.split()
        if len(fields) == 4:  # one check, the usual decision: no slicing
            return Verdict(
                fields[0] == b"1",
                int(fields[1]),
                (int(fields[2]),),
                (float(fields[3]),),
            )
        return Verdict(
            fields[0] == b"1",
            int(fields[1]),
            tuple(map(int, fields[2::2])),
            tuple(map(float, fields[3::2])),
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
