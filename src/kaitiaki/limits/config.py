"""Settings of the throttle: backends, limits per route group, usage plans, costs.

Kept apart from :mod:`kaitiaki.settings` (which re-exports
:class:`LimitSettings`) so the limiter's own vocabulary stays in its package.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BUILTIN_ROUTES",
    "ROUTE_GROUPS",
    "CostSettings",
    "LimitSettings",
    "RouteLimit",
]

RateText = Annotated[str, Field(pattern=r"^\d+\s*(/|per)\s*\d*\s*[a-z]+$")]
RouteGroup = Literal["public", "read", "search", "write", "operation", "bulk"]
PlanKey = Literal["*", "public", "read", "search", "write", "operation", "bulk"]

#: Every route group a request can fall in (see ``kaitiaki.limits.cost``).
ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    "public",
    "read",
    "search",
    "write",
    "operation",
    "bulk",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteLimit(_Frozen):
    """The limits of one route group for one key; an unset field inherits.

    ``rate`` is a burst-tolerant rate (GCRA): ``burst`` units may be spent at
    once (default: the rate's amount), refilled evenly over the period.
    ``daily`` and ``monthly`` are quotas in cost units; ``concurrency`` caps
    requests in flight at once.
    """

    rate: RateText | None = None
    burst: int | None = Field(default=None, ge=1, le=10_000_000)
    daily: int | None = Field(default=None, ge=1)
    monthly: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1, le=100_000)

    def over(self, other: RouteLimit | None) -> RouteLimit:
        """This limit with its unset fields taken from ``other``.

        ``rate`` and ``burst`` travel together: a layer that sets a rate
        without a burst does not inherit a burst meant for another rate.
        """
        if other is None:
            return self
        rate, burst = (
            (self.rate, self.burst)
            if self.rate is not None
            else (other.rate, self.burst or other.burst)
        )
        return RouteLimit(
            rate=rate,
            burst=burst,
            daily=self.daily or other.daily,
            monthly=self.monthly or other.monthly,
            concurrency=self.concurrency or other.concurrency,
        )


Plan = dict[PlanKey, RouteLimit]


#: Built in beneath ``[limits.routes]``: what an unset field falls back to.
BUILTIN_ROUTES: dict[RouteGroup, RouteLimit] = {"bulk": RouteLimit(concurrency=2)}


class CostSettings(_Frozen):
    """What one request costs, in units of the limits it is counted against."""

    public: int = Field(default=1, ge=0, le=10_000)
    read: int = Field(default=1, ge=0, le=10_000)
    search: int = Field(default=1, ge=0, le=10_000)
    write: int = Field(default=1, ge=0, le=10_000)
    operation: int = Field(default=5, ge=0, le=10_000)
    bulk: int = Field(default=25, ge=0, le=10_000)
    include: int = Field(default=1, ge=0, le=1000)
    chain: int = Field(default=1, ge=0, le=1000)
    count_unit: int = Field(default=50, ge=1, le=10_000)
    entry: int = Field(default=1, ge=0, le=1000)

    def base(self, group: RouteGroup) -> int:
        return int(getattr(self, group))


class LimitSettings(_Frozen):
    """Throttling and quotas (see docs/configuration.md, ``[limits]``)."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field(default="kaitiaki:rl:", min_length=1, max_length=64)
    store_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    store_clock: Literal["redis", "gateway"] = "redis"
    store_retry_seconds: float = Field(default=1.0, ge=0, le=60)
    on_store_failure: Literal["refuse", "local"] = "refuse"
    local_fraction: float = Field(default=0.25, gt=0, le=1)
    unavailable_retry_after_seconds: int = Field(default=5, ge=1, le=3600)

    timezone: str = "Pacific/Auckland"
    quota_window: Literal["calendar", "rolling"] = "calendar"
    concurrency_lease_seconds: int = Field(default=300, ge=1, le=86_400)
    ipv6_prefix: int = Field(default=64, ge=32, le=128)

    headers: Literal["ietf", "x-ratelimit", "both", "none"] = "ietf"
    disclose_policy: bool = False

    address_rate: RateText = "1200/minute"
    address_burst: int | None = Field(default=None, ge=1, le=10_000_000)
    default_rate: RateText = "120/minute"
    routes: dict[RouteGroup, RouteLimit] = Field(default_factory=dict)
    plans: dict[str, Plan] = Field(default_factory=dict)
    clients: dict[str, str] = Field(default_factory=dict)
    subject: Plan = Field(default_factory=dict)
    organisation: Plan = Field(default_factory=dict)
    organisations: dict[str, str] = Field(default_factory=dict)
    costs: CostSettings = CostSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "timezone must be an IANA zone name such as 'Pacific/Auckland'"
            ) from exc
        return value

    @model_validator(mode="after")
    def _plans_exist(self) -> Self:
        for section in ("clients", "organisations"):
            for name, plan in getattr(self, section).items():
                if plan not in self.plans and not _is_rate(plan):
                    raise ValueError(
                        f"{section}.{name}: {plan!r} is neither a rate such as "
                        f"'30/minute' nor a plan defined under [limits.plans]"
                    )
        return self


def _is_rate(text: str) -> bool:
    try:
        RouteLimit(rate=text)
    except ValueError:
        return False
    return True
