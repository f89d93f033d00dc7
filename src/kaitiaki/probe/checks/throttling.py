"""Requirement 3, rate limits (disruptive, only when the profile allows): a
bounded burst from one client ends in 429 with Retry-After, and another
client is served at the same moment."""

from __future__ import annotations

import re

from kaitiaki.probe.checks.common import fail, passed
from kaitiaki.probe.http import Sent
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import Target

__all__ = ["CHECKS"]

THROTTLE = ("HNZAS_SHOULD_THROTTLE_API_ACCESS", "HNZAS_SHOULD_USE_THROTTLING_FOR_DDOS")
DISRUPTIVE = frozenset({"disruptive"})
_DELTA = re.compile(r"\d{1,6}")


def _burst(target: Target) -> tuple[int, Sent | None]:
    """Requests sent until the first 429 (bounded by ``safety.burst_max``)."""
    if "burst" in target.memo:
        found: tuple[int, Sent | None] = target.memo["burst"]
        return found
    token = target.token("reader")
    limit = target.profile.safety.burst_max
    throttled: Sent | None = None
    count = 0
    for count in range(1, limit + 1):  # noqa: B007 - count is reported
        sent = target.request("GET", target.read_path, token=token, burst=True)
        if sent.status == 429:
            throttled = sent
            break
    target.memo["burst"] = (count, throttled)
    return count, throttled


def _burst_check(target: Target) -> Outcome:
    count, throttled = _burst(target)
    if throttled is None:
        return fail(f"{count} requests in a burst were never answered 429")
    retry = throttled.headers.get("retry-after", "")
    if not _DELTA.fullmatch(retry.strip()) and "GMT" not in retry:
        return fail("429 without a usable Retry-After header", throttled)
    return passed(f"429 with Retry-After: {retry} after {count} requests", throttled)


def _other_client(target: Target) -> Outcome:
    _, throttled = _burst(target)
    if throttled is None:
        return fail("the burst was never throttled, so isolation cannot be shown")
    sent = target.request("GET", target.read_path, role="other")
    if not 200 <= sent.status < 300:
        return fail(
            f"another client was refused (HTTP {sent.status}) while the first "
            "was throttled",
            sent,
        )
    return passed("another client is served while the first is throttled", sent)


FIX = (
    "Rate-limit every route per client (and per address before authentication), "
    "answer 429 with Retry-After, and keep counters per client so one client "
    "cannot starve another."
)

CHECKS: tuple[Check, ...] = (
    Check(
        "throttle.burst",
        "A bounded burst from one client is answered 429 with Retry-After",
        3,
        THROTTLE,
        Severity.HIGH,
        FIX,
        _burst_check,
        DISRUPTIVE,
    ),
    Check(
        "throttle.other-client",
        "Another client is unaffected while one is throttled",
        3,
        THROTTLE,
        Severity.MEDIUM,
        FIX,
        _other_client,
        DISRUPTIVE,
    ),
)
