"""Counters in this process: the default for the embedded single-process run.

A decision runs without awaiting anything, so on one event loop it is atomic.
Counters expire with their window; expired ones are swept every few thousand
decisions, so memory stays bounded by the keys active in the longest window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from kaitiaki.limits.checks import Check, Verdict

__all__ = ["MemoryStore", "evaluate"]

_EPSILON = 1e-9
_SWEEP_EVERY = 4096
_MARGIN = 60.0

# One evaluated check: admitted?, remaining, reset or retry seconds, new state.
Step = tuple[bool, int, float, Any]
# What the store holds per key: the state and the time it expires.
Entry = tuple[Any, float]


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
    checks: Sequence[Check], entries: Mapping[str, Entry], now: float
) -> tuple[Verdict, list[Step]]:
    """Evaluate ``checks`` against ``entries`` (state, expiry) without writing."""
    steps: list[Step] = []
    failed = -1
    for index, check in enumerate(checks):
        entry = entries.get(check.key)
        state = entry[0] if entry is not None and entry[1] > now else None
        step = _EVALUATE[check.kind](check, state, now)
        if not step[0] and failed < 0:
            failed = index
        steps.append(step)
    verdict = Verdict(
        failed < 0,
        failed,
        tuple([step[1] for step in steps]),
        tuple([step[2] for step in steps]),
    )
    return verdict, steps


class MemoryStore:
    """Every counter in one dictionary: key → (state, expiry)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._decisions = 0

    def decide_now(self, checks: Sequence[Check], now: float) -> Verdict:
        """The decision itself, synchronous; :meth:`decide` wraps it."""
        self._decisions += 1
        if self._decisions >= _SWEEP_EVERY:
            self._decisions = 0
            self.sweep(now)
        entries = self._entries
        verdict, steps = evaluate(checks, entries, now)
        if verdict.admitted:
            for check, step in zip(checks, steps, strict=True):
                entries[check.key] = (step[3], _expiry(check, step[3], now))
        return verdict

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        return self.decide_now(checks, now)

    async def release(self, checks: Sequence[Check]) -> None:
        for check in checks:
            entry = self._entries.get(check.key)
            if check.kind == "concurrency" and entry is not None:
                entry[0].pop(check.lease, None)

    def sweep(self, now: float) -> None:
        """Forget every counter whose window has passed."""
        for key in [k for k, entry in self._entries.items() if entry[1] <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
