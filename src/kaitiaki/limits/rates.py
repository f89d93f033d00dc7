"""Per-address and per-client request rates, in memory for one process.

The counting itself is ``limits``' moving window; what Kaitiaki adds is which
key a request is counted under, and the refusal with ``Retry-After``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from kaitiaki.errors import RateLimited
from kaitiaki.settings import LimitSettings

__all__ = ["RateDecision", "RateLimits"]


@dataclass(frozen=True, slots=True)
class RateDecision:
    limit: int
    remaining: int
    reset_after: int


class RateLimits:
    """Counts requests per key and refuses those over the configured rate."""

    def __init__(self, settings: LimitSettings) -> None:
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._address_rate = parse(settings.address_rate)
        self._default_rate = parse(settings.default_rate)
        self._client_rates = {
            client: parse(rate) for client, rate in settings.clients.items()
        }

    async def check_address(self, address: str, now: float) -> RateDecision:
        """Count a request from ``address`` before any credential is looked at."""
        return await self._hit(self._address_rate, "address", address, now)

    async def check_client(self, client_id: str, now: float) -> RateDecision:
        """Count a request from an authenticated client."""
        rate = self._client_rates.get(client_id, self._default_rate)
        return await self._hit(rate, "client", client_id, now)

    async def _hit(
        self, rate: RateLimitItem, kind: str, key: str, now: float
    ) -> RateDecision:
        allowed = await self._limiter.hit(rate, kind, key)
        stats = await self._limiter.get_window_stats(rate, kind, key)
        reset_after = max(1, math.ceil(stats.reset_time - now))
        decision = RateDecision(rate.amount, stats.remaining, reset_after)
        if not allowed:
            raise RateLimited(
                "Too many requests; try again later.",
                detail=f"rate_{kind}",
                headers={"Retry-After": str(reset_after)},
            )
        return decision

    async def close(self) -> None:
        """Stop the storage's background expiry task."""
        timer = getattr(self._storage, "timer", None)
        if timer is not None:
            timer.cancel()
