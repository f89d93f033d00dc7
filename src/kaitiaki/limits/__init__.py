"""Request-rate limits, counted with the maintained ``limits`` library."""

from kaitiaki.limits.rates import RateDecision, RateLimits

__all__ = ["RateDecision", "RateLimits"]
