"""Quota windows in Pacific/Auckland across days, months and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kaitiaki.limits.windows import WindowCache, calendar_window

NZ = ZoneInfo("Pacific/Auckland")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=NZ).timestamp()


@pytest.mark.parametrize(
    ("now", "period", "start", "end", "hours"),
    [
        # 11:30 UTC on 4 Dec is 00:30 NZDT on 5 Dec: the local day already rolled.
        ("2026-12-04T11:30:00", "daily", "2026-12-05", "2026-12-06", 24),
        ("2026-12-04T10:59:59", "daily", "2026-12-04", "2026-12-05", 24),
        # NZDT ends at 03:00 on 5 April 2026: that day has 25 hours.
        ("2026-04-05T05:00:00", "daily", "2026-04-05", "2026-04-06", 25),
        # NZST ends at 02:00 on 27 September 2026: that day has 23 hours.
        ("2026-09-27T05:00:00", "daily", "2026-09-27", "2026-09-28", 23),
        ("2026-12-31T12:00:00", "monthly", "2027-01-01", "2027-02-01", 31 * 24),
        ("2026-02-10T00:00:00", "monthly", "2026-02-01", "2026-03-01", 28 * 24),
    ],
)
def test_calendar_window_is_local(
    now: str, period: str, start: str, end: str, hours: int
) -> None:
    begins, ends = calendar_window(utc(now), period, NZ)  # type: ignore[arg-type]
    assert begins == local(start + "T00:00:00")
    assert ends == local(end + "T00:00:00")
    assert ends - begins == hours * 3600


def test_window_cache_moves_on_at_midnight() -> None:
    cache = WindowCache(NZ)
    before = local("2026-12-05T23:59:59")
    first = cache.window(before, "daily")
    assert cache.window(before - 3600, "daily") is first
    after = cache.window(before + 2, "daily")
    assert after[0] == first[1]
