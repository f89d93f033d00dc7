"""The throttle the pipeline calls: per address before authentication, per
client, subject and organisation after it; fail closed when the store is down.

Policies come from settings (:mod:`kaitiaki.limits.policy`), counting from a
store (memory or Redis). When Redis cannot be reached the request is refused
with 503 and ``Retry-After`` (``limiter_unavailable``), unless the operator
named ``on_store_failure = "local"``: then this process counts alone against
``local_fraction`` of every limit until Redis answers again.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kaitiaki.errors import (
    ConfigError,
    CostOverLimit,
    LimiterUnavailable,
    RateLimited,
    StoreUnavailable,
)
from kaitiaki.limits.checks import Check, LimitStore, Verdict, scaled
from kaitiaki.limits.config import ROUTE_GROUPS, LimitSettings
from kaitiaki.limits.cost import request_cost, route_group
from kaitiaki.limits.headers import limit_headers
from kaitiaki.limits.memory import MemoryStore
from kaitiaki.limits.policy import Policy

__all__ = ["LimiterHealth", "RateDecision", "RateLimits", "open_store"]

logger = logging.getLogger("kaitiaki.limits")

#: Settings a reload cannot change: they choose and reach the store.
_RESTART_ONLY = (
    "backend",
    "redis_url",
    "key_prefix",
    "store_timeout_seconds",
    "store_clock",
)


class RateDecision(NamedTuple):
    """An admitted request: headers for its reply, leases to give back."""

    headers: tuple[tuple[str, str], ...] = ()
    leases: tuple[Check, ...] = ()
    local: bool = False
    cost: int = 0
    checks: tuple[Check, ...] = ()
    group: str = ""


@dataclass(slots=True)
class LimiterHealth:
    """What metrics and alerts read: the store's state and failure counters."""

    backend: str
    state: str = "healthy"
    store_failures: int = 0
    unavailable_refusals: int = 0
    local_decisions: int = 0
    last_failure: str | None = None
    refusals: dict[str, int] = field(default_factory=dict)


def open_store(settings: LimitSettings) -> LimitStore:
    """The store ``settings.backend`` names."""
    if settings.backend == "redis":
        from kaitiaki.limits.redisstore import RedisStore

        return RedisStore(
            settings.redis_url,
            prefix=settings.key_prefix,
            timeout=settings.store_timeout_seconds,
            server_clock=settings.store_clock == "redis",
        )
    return MemoryStore()


class RateLimits:
    """Counts requests and refuses those over a rate, quota or concurrency cap."""

    def __init__(
        self, settings: LimitSettings, *, store: LimitStore | None = None
    ) -> None:
        self._policy = Policy(settings)
        self._store = store if store is not None else open_store(settings)
        self._local = MemoryStore()
        self._retry_at = 0.0
        self._leases = itertools.count()
        self._lease_prefix = f"{os.getpid()}-{id(self):x}-"
        self.health = LimiterHealth(backend=settings.backend)
        #: Called with the new state ("healthy", "degraded" or "down") each
        #: time the store's state changes: the gateway audits and meters it.
        self.on_state: Callable[[str], None] | None = None

    @property
    def settings(self) -> LimitSettings:
        return self._policy.settings

    def reload(self, settings: LimitSettings) -> None:
        """Take new limits, plans and costs; counters carry on unchanged."""
        changed = [
            name
            for name in _RESTART_ONLY
            if getattr(settings, name) != getattr(self.settings, name)
        ]
        if changed:
            raise ConfigError(
                f"limits.{', limits.'.join(changed)}: changing the store needs a "
                f"restart; the running limits are kept"
            )
        self._policy = Policy(settings)
        logger.info("rate limits reloaded")

    async def check_address(self, address: str, now: float) -> RateDecision:
        """Count a request from ``address`` before any credential is looked at."""
        checks = self._policy.address_checks(address, now)
        return await self._admit(checks, now, cost=1)

    async def check_client(
        self,
        client_id: str,
        now: float,
        *,
        subject: str | None = None,
        organisation: str | None = None,
        interaction: str | None = None,
        path: str = "",
        query: Sequence[tuple[str, str]] = (),
        entries: int = 0,
    ) -> RateDecision:
        """Count an authenticated request by its client, subject, organisation
        (the HPI organisation of its Request-Context) and route group, at its
        FHIR cost."""
        policy = self._policy
        group = route_group(interaction, path)
        cost = request_cost(group, query, policy.settings.costs, entries=entries)
        lease = self._lease_prefix + str(next(self._leases))
        checks = policy.request_checks(
            group,
            cost,
            now,
            client_id=client_id,
            subject=subject,
            organisation=organisation,
            lease=lease,
        )
        decision = await self._admit(checks, now, cost=cost)
        return decision._replace(group=group)

    async def top_up(
        self,
        decision: RateDecision,
        now: float,
        *,
        query: Sequence[tuple[str, str]] = (),
        entries: int = 0,
    ) -> RateDecision:
        """Charge what a request turned out to cost once its body was read
        (a ``_search`` form, a Bundle's entries) beyond what was counted."""
        if decision.group not in ROUTE_GROUPS:
            return decision
        costs = self.settings.costs
        cost = request_cost(decision.group, query, costs, entries=entries)
        if cost <= decision.cost:
            return decision
        extra = [
            check._replace(cost=check.cost + cost - decision.cost)
            for check in decision.checks
            if check.kind != "concurrency"
        ]
        self._refuse_outright(extra)
        charged = [c._replace(cost=cost - decision.cost) for c in extra]
        if decision.local:
            # Already scaled for this process: count them here, not in Redis.
            verdict = self._local.decide_now(charged, now)
            headers = tuple(limit_headers(charged, verdict, self.settings))
            if not verdict.admitted:
                self._refuse(charged, verdict, headers, local=True)
            return decision._replace(headers=headers, cost=cost)
        grant = await self._admit(charged, now, cost=cost - decision.cost)
        return decision._replace(headers=grant.headers, cost=cost)

    async def release(self, decision: RateDecision) -> None:
        """Give back the concurrency leases an admitted request holds."""
        if not decision.leases:
            return
        store = self._local if decision.local else self._store
        try:
            await store.release(decision.leases)
        except StoreUnavailable as exc:
            logger.warning("concurrency lease not released (%s); it will expire", exc)

    async def _admit(
        self, checks: list[Check], now: float, *, cost: int
    ) -> RateDecision:
        if not checks:
            return RateDecision(cost=cost)
        self._refuse_outright(checks)
        verdict, counted, local = await self._decide(checks, now)
        headers = tuple(limit_headers(counted, verdict, self.settings))
        if not verdict.admitted:
            self._refuse(counted, verdict, headers, local)
        leases = tuple([c for c in counted if c.kind == "concurrency"])
        return RateDecision(headers, leases, local, cost, tuple(counted))

    def _refuse_outright(self, checks: Sequence[Check]) -> None:
        """Refuse, before asking the store, a cost no window could ever hold."""
        for check in checks:
            if check.kind != "concurrency" and check.cost > check.limit:
                self._count("cost_over_limit")
                raise CostOverLimit(
                    "The request costs more than its limit allows; ask for less.",
                    detail="cost_over_limit",
                )

    def _refuse(
        self,
        checks: list[Check],
        verdict: Verdict,
        headers: tuple[tuple[str, str], ...],
        local: bool,
    ) -> None:
        check = checks[verdict.failed]
        detail = check.refusal + ("_local" if local else "")
        self._count(detail)
        retry_after = max(1, math.ceil(verdict.reset[verdict.failed] - 1e-6))
        raise RateLimited(
            "Too many requests; try again later.",
            detail=detail,
            headers={**dict(headers), "Retry-After": str(retry_after)},
        )

    def _count(self, detail: str) -> None:
        self.health.refusals[detail] = self.health.refusals.get(detail, 0) + 1

    async def _decide(
        self, checks: list[Check], now: float
    ) -> tuple[Verdict, list[Check], bool]:
        if now >= self._retry_at:
            try:
                verdict = await self._store.decide(checks, now)
            except StoreUnavailable as exc:
                self._store_failed(exc, now)
            else:
                if self.health.state != "healthy":
                    logger.warning("rate-limit store reachable again; limits exact")
                    self._set_state("healthy")
                return verdict, checks, False
        return self._fallback(checks, now)

    def _store_failed(self, exc: StoreUnavailable, now: float) -> None:
        self.health.store_failures += 1
        self.health.last_failure = str(exc)
        self._retry_at = now + self.settings.store_retry_seconds
        state = "degraded" if self.settings.on_store_failure == "local" else "down"
        if self.health.state != state:
            logger.warning(
                "rate-limit store unreachable (%s); %s",
                exc,
                "counting locally at a fraction of each limit"
                if state == "degraded"
                else "refusing requests with 503 until it answers",
            )
            self._set_state(state)

    def _set_state(self, state: str) -> None:
        self.health.state = state
        if self.on_state is not None:
            self.on_state(state)

    def _fallback(
        self, checks: list[Check], now: float
    ) -> tuple[Verdict, list[Check], bool]:
        if self.settings.on_store_failure != "local":
            self.health.unavailable_refusals += 1
            self._count("limiter_unavailable")
            raise LimiterUnavailable(
                "The service is temporarily unable to take requests; try again later.",
                detail="limiter_unavailable",
                headers={
                    "Retry-After": str(self.settings.unavailable_retry_after_seconds)
                },
            )
        self.health.local_decisions += 1
        local = [scaled(check, self.settings.local_fraction) for check in checks]
        return self._local.decide_now(local, now), local, True

    async def close(self) -> None:
        await self._store.close()
        await self._local.close()
