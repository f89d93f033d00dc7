"""Throttling and quotas: GCRA rates, calendar or rolling quotas, concurrency
caps and FHIR request costs, counted in memory or atomically in Redis."""

from kaitiaki.limits.config import CostSettings, LimitSettings, RouteLimit
from kaitiaki.limits.rates import LimiterHealth, RateDecision, RateLimits

__all__ = [
    "CostSettings",
    "LimitSettings",
    "LimiterHealth",
    "RateDecision",
    "RateLimits",
    "RouteLimit",
]
