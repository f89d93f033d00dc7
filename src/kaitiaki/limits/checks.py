"""What a store is asked to decide, what it answers, and the store interface.

A decision is a list of :class:`Check` values, admitted together or not at
all: either every check has room for its cost and all are charged, or none is
charged and the first one without room is named. Stores differ only in where
the counters live. Checks and verdicts are named tuples: they are built on
every request, and a tuple is Python's cheapest immutable record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

__all__ = ["Check", "LimitStore", "Verdict", "scaled"]

Kind = Literal["rate", "quota", "rolling", "concurrency"]


class Check(NamedTuple):
    """One counter a request is charged against.

    ``rate`` (GCRA): ``limit`` is the burst capacity in units, ``interval``
    the seconds one unit takes to refill. ``quota``: ``limit`` units in the
    calendar window ending at ``ends_at``. ``rolling``: ``limit`` units in
    any ``slices`` consecutive slices of ``interval`` seconds. ``concurrency``:
    at most ``limit`` leases at once; ``lease`` names this request's lease,
    which expires ``interval`` seconds after it is taken.
    """

    kind: Kind
    key: str
    policy: str
    refusal: str
    limit: int
    cost: int
    interval: float = 0.0
    ends_at: float = 0.0
    slices: int = 0
    lease: str = ""

    @property
    def window(self) -> float:
        """Seconds the whole limit spans, as shown in ``RateLimit-Policy``."""
        if self.kind == "rate":
            return self.limit * self.interval
        if self.kind == "rolling":
            return self.slices * self.interval
        return self.interval


class Verdict(NamedTuple):
    """A store's answer: admitted or not, and each check's state after it.

    ``remaining[i]`` is what check ``i`` has left; ``reset[i]`` the seconds
    until it is whole again, or, for the ``failed`` check, until the refused
    request would fit (its ``Retry-After``).
    """

    admitted: bool
    failed: int
    remaining: tuple[int, ...]
    reset: tuple[float, ...]


class LimitStore(Protocol):
    """Where counters live: in this process, or shared in Redis."""

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        """Charge every check or none, atomically."""
        ...

    async def release(self, checks: Sequence[Check]) -> None:
        """Give back the concurrency leases among ``checks``."""
        ...

    async def close(self) -> None: ...


def scaled(check: Check, fraction: float) -> Check:
    """A conservative share of ``check`` for one process in degraded mode."""
    limit = max(1, int(check.limit * fraction))
    if check.kind == "rate":
        return check._replace(limit=limit, interval=check.interval / fraction)
    return check._replace(limit=limit)
