"""Counters in this process: the default for the embedded single-process run.

A decision runs without awaiting anything, so on one event loop it is atomic.
Counters expire with their window; expired ones are swept every few thousand
decisions, so memory stays bounded by the keys active in the longest window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kaitiaki.limits.checks import Check, Verdict

__all__ = ["MemoryStore", "evaluate"]

_EPSILON = 1e-9
_SWEEP_EVERY = 4096
_MARGIN = 60.0

# One evaluated check: admitted?, remaining, reset or retry seconds, new state.
Step = tuple[bool, int, float, Any]


def _floor(value: float) -> int:
    return max(0, math.floor(value + _EPSILON))


def _rate(check: Check, state: Any, now: float) -> Step:
    tat = max(float(state or 0.0), now)
    new_tat = tat + check.cost * check.interval
    allow_at = new_tat - check.limit * check.interval
    if allow_at > now:
        free = (now - (tat - check.limit * check.interval)) / check.interval
        return False, _floor(free), allow_at - now, state
    return True, _floor((now - allow_at) / check.interval), new_tat - now, new_tat


def _quota(check: Check, state: Any, now: float) -> Step:
    count = int(state or 0)
    if count + check.cost > check.limit:
        return False, check.limit - count, check.ends_at - now, state
    count += check.cost
    return True, check.limit - count, check.ends_at - now, count


def _rolling(check: Check, state: Any, now: float) -> Step:
    current = math.floor(now / check.interval)
    oldest = current - check.slices + 1
    slices = {s: n for s, n in dict(state or {}).items() if s >= oldest}
    used = sum(slices.values())
    if used + check.cost > check.limit:
        freed = 0
        for index in sorted(slices):
            freed += slices[index]
            if used - freed + check.cost <= check.limit:
                retry = (index + check.slices) * check.interval - now
                return False, check.limit - used, retry, state
        return False, check.limit - used, check.slices * check.interval, state
    slices[current] = slices.get(current, 0) + check.cost
    reset = (min(slices) + check.slices) * check.interval - now
    return True, check.limit - used - check.cost, reset, slices


def _concurrency(check: Check, state: Any, now: float) -> Step:
    leases = {name: ends for name, ends in dict(state or {}).items() if ends > now}
    if len(leases) + 1 > check.limit:
        return False, 0, 1.0, state
    leases[check.lease] = now + check.interval
    return True, check.limit - len(leases), 0.0, leases


_EVALUATE = {
    "rate": _rate,
    "quota": _quota,
    "rolling": _rolling,
    "concurrency": _concurrency,
}


def _expiry(check: Check, state: Any, now: float) -> float:
    # The same minute's margin as the Redis script, so both stores forget a
    # counter at the same moment.
    if check.kind == "rate":
        return float(state) + _MARGIN
    if check.kind == "quota":
        return check.ends_at + _MARGIN
    if check.kind == "rolling":
        return now + check.slices * check.interval + _MARGIN
    return max(dict(state).values(), default=now) + _MARGIN


def evaluate(
    checks: Sequence[Check], values: dict[str, Any], now: float
) -> tuple[Verdict, list[Any]]:
    """Evaluate ``checks`` against ``values``; the new states if admitted."""
    steps = [_EVALUATE[c.kind](c, values.get(c.key), now) for c in checks]
    failed = next((i for i, step in enumerate(steps) if not step[0]), -1)
    verdict = Verdict(
        admitted=failed < 0,
        failed=failed,
        remaining=tuple(step[1] for step in steps),
        reset=tuple(step[2] for step in steps),
    )
    return verdict, [step[3] for step in steps]


class MemoryStore:
    """Every counter in one dictionary, with an expiry per key."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._decisions = 0

    def decide_now(self, checks: Sequence[Check], now: float) -> Verdict:
        """The decision itself, synchronous; :meth:`decide` wraps it."""
        self._decisions += 1
        if self._decisions % _SWEEP_EVERY == 0:
            self.sweep(now)
        values = self._live(checks, now)
        verdict, states = evaluate(checks, values, now)
        if verdict.admitted:
            for check, state in zip(checks, states, strict=True):
                self._values[check.key] = state
                self._expires[check.key] = _expiry(check, state, now)
        return verdict

    def _live(self, checks: Sequence[Check], now: float) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for check in checks:
            if self._expires.get(check.key, 0.0) > now:
                values[check.key] = self._values[check.key]
        return values

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        return self.decide_now(checks, now)

    async def release(self, checks: Sequence[Check]) -> None:
        for check in checks:
            if check.kind == "concurrency":
                leases = self._values.get(check.key)
                if isinstance(leases, dict):
                    leases.pop(check.lease, None)

    def sweep(self, now: float) -> None:
        """Forget every counter whose window has passed."""
        for key in [k for k, ends in self._expires.items() if ends <= now]:
            del self._expires[key]
            self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)

    async def close(self) -> None:
        self._values.clear()
        self._expires.clear()
