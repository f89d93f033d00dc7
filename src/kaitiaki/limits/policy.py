"""Which counters a request is charged against, from settings alone (pure).

Keys: the client address (before authentication), the client, the subject
(when it is not the client itself) and the organisation, each counted
separately per route group. The limits of one (key, route group) are
layered, each layer filling what the one above leaves unset::

    plan entry for the group  >  plan "*"  >  [limits.routes.<group>]
        >  built-in route defaults (bulk: concurrency 2)  >  default_rate

Rates and quotas are parsed with ``limits``' rate grammar
(``"600/minute"``, ``"10 per second"``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo

from kaitiaki.limits.checks import Check
from kaitiaki.limits.config import (
    BUILTIN_ROUTES,
    LimitSettings,
    Plan,
    RouteGroup,
    RouteLimit,
)
from kaitiaki.limits.windows import Period, WindowCache, rolling_shape
from kaitiaki.memo import BoundedMemo
from limits import parse

__all__ = ["Compiled", "Policy", "address_key"]


class _Counted(NamedTuple):
    """Who a counter belongs to: key kind, identity, route group, and charge."""

    kind: str
    ident: str
    group: str
    cost: int
    lease: str


@dataclass(frozen=True, slots=True)
class Compiled:
    """A resolved :class:`RouteLimit`: GCRA capacity and refill interval."""

    capacity: int = 0
    interval: float = 0.0
    daily: int | None = None
    monthly: int | None = None
    concurrency: int | None = None


def _compile(limit: RouteLimit) -> Compiled:
    capacity, interval = 0, 0.0
    if limit.rate is not None:
        item = parse(limit.rate)
        capacity = limit.burst or item.amount
        interval = item.get_expiry() / item.amount
    return Compiled(capacity, interval, limit.daily, limit.monthly, limit.concurrency)


def _layer(plan: Plan, group: RouteGroup, below: RouteLimit | None) -> RouteLimit:
    own = plan.get(group, RouteLimit()).over(plan.get("*"))
    return own.over(below)


def address_key(address: str, ipv6_prefix: int) -> str:
    """The address as counted: IPv6 by its network prefix, since one host can
    hold a whole /64; anything that is not an IP address as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False))
    return str(ip)


class Policy:
    """Settings compiled for fast lookups; one per settings generation."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self._windows = WindowCache(ZoneInfo(settings.timezone))
        self._address = _compile(
            RouteLimit(rate=settings.address_rate, burst=settings.address_burst)
        )
        self._cache: dict[tuple[str, str, RouteGroup], Compiled] = {}
        # Parsing an address costs more than the rest of its check; a flood
        # of distinct addresses only evicts (kaitiaki.memo).
        self._address_keys: BoundedMemo[str, str] = BoundedMemo(4096)

    def address_checks(self, address: str, now: float) -> list[Check]:
        key = self._address_keys.get(address)
        if key is None:
            key = address_key(address, self.settings.ipv6_prefix)
            self._address_keys.put(address, key)
        return self._checks(self._address, _Counted("address", key, "edge", 1, ""), now)

    def request_checks(
        self,
        group: RouteGroup,
        cost: int,
        now: float,
        *,
        client_id: str,
        subject: str | None = None,
        organisation: str | None = None,
        lease: str = "",
    ) -> list[Check]:
        """Every check of one authenticated request, client first."""
        found = self._checks(
            self._client(client_id, group),
            _Counted("client", client_id, group, cost, lease),
            now,
        )
        if subject is not None and subject != client_id and self.settings.subject:
            who = _Counted("subject", subject, group, cost, lease)
            found += self._checks(self._subject(group), who, now)
        if organisation is not None:
            who = _Counted("organisation", organisation, group, cost, lease)
            found += self._checks(self._organisation(organisation, group), who, now)
        return found

    def _plan(self, name: str | None) -> Plan:
        if name is None:
            return {}
        return self.settings.plans.get(name) or {"*": RouteLimit(rate=name)}

    def _client(self, client_id: str, group: RouteGroup) -> Compiled:
        plan_name = self.settings.clients.get(client_id)
        cached = self._cache.get(("client", plan_name or "", group))
        if cached is not None:
            return cached
        base = RouteLimit(rate=self.settings.default_rate)
        builtin = BUILTIN_ROUTES.get(group, RouteLimit()).over(base)
        routes = self.settings.routes.get(group, RouteLimit()).over(builtin)
        compiled = _compile(_layer(self._plan(plan_name), group, routes))
        self._cache["client", plan_name or "", group] = compiled
        return compiled

    def _subject(self, group: RouteGroup) -> Compiled:
        cached = self._cache.get(("subject", "", group))
        if cached is None:
            cached = _compile(_layer(self.settings.subject, group, None))
            self._cache["subject", "", group] = cached
        return cached

    def _organisation(self, organisation: str, group: RouteGroup) -> Compiled:
        plan_name = self.settings.organisations.get(organisation)
        cached = self._cache.get(("organisation", plan_name or "", group))
        if cached is None:
            default = _layer(self.settings.organisation, group, None)
            cached = _compile(_layer(self._plan(plan_name), group, default))
            self._cache["organisation", plan_name or "", group] = cached
        return cached

    def _checks(self, limit: Compiled, who: _Counted, now: float) -> list[Check]:
        kind, ident, group = who.kind, who.ident, who.group
        found: list[Check] = []
        if limit.capacity:
            found.append(
                Check(
                    "rate",
                    f"{group}:rate:{kind}:{ident}",
                    f"{kind}-{group}-rate",
                    f"rate_{kind}",
                    limit.capacity,
                    who.cost,
                    interval=limit.interval,
                )
            )
        if limit.daily:
            found.append(self._quota("daily", limit.daily, who, now))
        if limit.monthly:
            found.append(self._quota("monthly", limit.monthly, who, now))
        if limit.concurrency and who.lease:
            found.append(
                Check(
                    "concurrency",
                    f"{group}:conc:{kind}:{ident}",
                    f"{kind}-{group}-concurrency",
                    f"concurrency_{kind}",
                    limit.concurrency,
                    1,
                    interval=float(self.settings.concurrency_lease_seconds),
                    lease=who.lease,
                )
            )
        return found

    def _quota(self, period: Period, amount: int, who: _Counted, now: float) -> Check:
        kind, ident, group = who.kind, who.ident, who.group
        policy, refusal = f"{kind}-{group}-{period}", f"quota_{kind}"
        if self.settings.quota_window == "rolling":
            width, slices = rolling_shape(period)
            key = f"{group}:{period}~:{kind}:{ident}"
            return Check(
                "rolling", key, policy, refusal, amount, who.cost, width, slices=slices
            )
        start, end = self._windows.window(now, period)
        key = f"{group}:{period}:{start:.0f}:{kind}:{ident}"
        return Check(
            "quota", key, policy, refusal, amount, who.cost, end - start, ends_at=end
        )
