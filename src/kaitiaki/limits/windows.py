"""Quota windows: calendar days and months in the operator's zone, or rolling.

Pure functions of ``now``; the zone comes from settings
(``Pacific/Auckland`` by default), so a daily quota renews at local midnight
on both sides of a daylight-saving change.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["Period", "WindowCache", "calendar_window", "rolling_shape"]

Period = Literal["daily", "monthly"]

#: Rolling windows are counted in slices: a unit leaves the window up to one
#: slice late, never early, so the count is conservative.
_ROLLING = {"daily": (3600.0, 24), "monthly": (86_400.0, 30)}


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # New Zealand changes its clocks at 02:00 and 03:00, so midnight exists
    # and is unambiguous on every day.
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def calendar_window(now: float, period: Period, zone: ZoneInfo) -> tuple[float, float]:
    """Start and end (epoch seconds) of the local day or month holding ``now``."""
    local = datetime.fromtimestamp(now, zone).date()
    if period == "daily":
        first, following = local, local + timedelta(days=1)
    else:
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    return (
        _midnight(first, zone).timestamp(),
        _midnight(following, zone).timestamp(),
    )


def rolling_shape(period: Period) -> tuple[float, int]:
    """Slice length in seconds and slice count of a rolling ``period``."""
    return _ROLLING[period]


class WindowCache:
    """Remembers the current calendar windows, so most decisions skip zoneinfo."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._current: dict[Period, tuple[float, float]] = {}

    def window(self, now: float, period: Period) -> tuple[float, float]:
        found = self._current.get(period)
        if found is not None and found[0] <= now < found[1]:
            return found
        found = calendar_window(now, period, self._zone)
        self._current[period] = found
        return found
