"""A bounded least-recently-used memo for pure, per-value decisions.

The hot path decides the same values again and again (one client's
Request-Context, the same ``Accept`` header); a memo keyed by the value skips
the repeated work. It is bounded in entries, so a flood of distinct values
only evicts entries and costs what it would without the memo.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["BoundedMemo"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """At most ``size`` entries; the least recently used goes first (0: none)."""

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._size == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
