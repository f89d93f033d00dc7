"""The bounded memo the hot path keeps its per-value decisions in."""

from __future__ import annotations

import pytest

from kaitiaki.memo import BoundedMemo


def test_memo_evicts_the_least_recently_used_entry() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "b" is now the least recently used
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (1, None, 3)
    assert len(memo) == 2


def test_memo_flood_of_distinct_keys_stays_bounded() -> None:
    memo: BoundedMemo[int, int] = BoundedMemo(100)
    for key in range(10_000):
        memo.put(key, key)
    assert len(memo) == 100
    assert memo.get(9_999) == 9_999 and memo.get(0) is None


def test_memo_of_size_zero_remembers_nothing() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(0)
    memo.put("a", 1)
    assert memo.get("a") is None and len(memo) == 0


def test_memo_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        BoundedMemo(-1)
