"""Rate-limit response headers: IETF ``RateLimit``/``RateLimit-Policy``
(draft-ietf-httpapi-ratelimit-headers) and Health NZ's ``x-ratelimit-*``.

Part C of the standard asks that limits not be disclosed, so by default only
what a well-behaved client needs to pace itself is sent: the remaining units
and the seconds to reset of the tightest limit, under a neutral name.
``disclose_policy`` adds each policy's quota and window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kaitiaki.limits.checks import Check, Verdict
from kaitiaki.limits.config import LimitSettings

__all__ = ["limit_headers"]


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-6))


def _tightest(checks: Sequence[Check], verdict: Verdict) -> int:
    if verdict.failed >= 0:
        return verdict.failed
    if len(checks) == 1:
        return 0
    shown = [i for i, check in enumerate(checks) if check.kind != "concurrency"]
    return min(shown, key=lambda i: (verdict.remaining[i], -verdict.reset[i]))


def _ietf(
    checks: Sequence[Check], verdict: Verdict, tightest: int, disclose: bool
) -> list[tuple[str, str]]:
    if not disclose:
        remaining, reset = verdict.remaining[tightest], verdict.reset[tightest]
        return [("ratelimit", f'"limit";r={remaining};t={_seconds(reset)}')]
    shown = [i for i, check in enumerate(checks) if check.kind != "concurrency"]
    state = ", ".join(
        f'"{checks[i].policy}";r={verdict.remaining[i]};t={_seconds(verdict.reset[i])}'
        for i in shown
    )
    policy = ", ".join(
        f'"{checks[i].policy}";q={checks[i].limit};w={_seconds(checks[i].window)}'
        for i in shown
    )
    return [("ratelimit", state), ("ratelimit-policy", policy)]


def _x_ratelimit(
    checks: Sequence[Check], verdict: Verdict, tightest: int, disclose: bool
) -> list[tuple[str, str]]:
    reset_ms = max(0, math.ceil(verdict.reset[tightest] * 1000))
    headers = [
        ("x-ratelimit-remaining", str(verdict.remaining[tightest])),
        ("x-ratelimit-reset", str(reset_ms)),
    ]
    if disclose:
        headers.insert(0, ("x-ratelimit-limit", str(checks[tightest].limit)))
    return headers


def limit_headers(
    checks: Sequence[Check], verdict: Verdict, settings: LimitSettings
) -> list[tuple[str, str]]:
    """The headers for one decision, in the names ``settings.headers`` asks."""
    if settings.headers == "none" or not checks:
        return []
    if verdict.failed < 0 and all(check.kind == "concurrency" for check in checks):
        return []
    tightest = _tightest(checks, verdict)
    headers: list[tuple[str, str]] = []
    if settings.headers in ("ietf", "both"):
        headers += _ietf(checks, verdict, tightest, settings.disclose_policy)
    if settings.headers in ("x-ratelimit", "both"):
        headers += _x_ratelimit(checks, verdict, tightest, settings.disclose_policy)
    return headers
