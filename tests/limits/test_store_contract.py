"""One contract for every store: the same decisions from memory and Redis.

Time is passed in, never slept: ``now`` moves by arithmetic.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kaitiaki.limits.checks import Check, LimitStore
from kaitiaki.limits.memory import MemoryStore
from kaitiaki.limits.redisstore import RedisStore
from tests.redis_support import SHARED_REDIS, OwnRedis

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0


def rate(key: str = "r", limit: int = 3, cost: int = 1, interval: float = 10.0):
    return Check("rate", key, "p", "rate_client", limit, cost, interval=interval)


def quota(key: str = "q", limit: int = 5, cost: int = 1, ends_at: float = T0 + 100):
    return Check("quota", key, "p", "quota_client", limit, cost, 86400, ends_at=ends_at)


def rolling(key: str = "w", limit: int = 4, cost: int = 1):
    return Check("rolling", key, "p", "quota_client", limit, cost, 60.0, slices=3)


def lease(name: str, key: str = "c", limit: int = 2, ttl: float = 30.0):
    return Check(
        "concurrency", key, "p", "concurrency_client", limit, 1, ttl, lease=name
    )


async def admitted(store: LimitStore, checks: list[Check], now: float) -> bool:
    return (await store.decide(checks, now)).admitted


async def test_rate_admits_burst_then_refuses(store: LimitStore) -> None:
    results = [await admitted(store, [rate()], T0) for _ in range(5)]
    assert results == [True, True, True, False, False]


async def test_rate_refusal_names_when_a_unit_returns(store: LimitStore) -> None:
    for _ in range(3):
        await store.decide([rate()], T0)
    verdict = await store.decide([rate()], T0 + 4)
    assert not verdict.admitted
    assert verdict.failed == 0
    assert verdict.remaining == (0,)
    assert verdict.reset[0] == pytest.approx(6.0)


async def test_rate_refills_one_unit_per_interval(store: LimitStore) -> None:
    for _ in range(3):
        await store.decide([rate()], T0)
    assert await admitted(store, [rate()], T0 + 10)
    assert not await admitted(store, [rate()], T0 + 10)
    verdict = await store.decide([rate()], T0 + 40)
    assert verdict.admitted
    assert verdict.remaining == (2,)
    assert verdict.reset[0] == pytest.approx(10.0)


async def test_rate_cost_over_remaining_is_refused_and_not_charged(
    store: LimitStore,
) -> None:
    assert await admitted(store, [rate(cost=2)], T0)
    assert not await admitted(store, [rate(cost=2)], T0)
    assert await admitted(store, [rate(cost=1)], T0)


async def test_decision_is_all_or_nothing(store: LimitStore) -> None:
    assert await admitted(store, [quota(limit=1)], T0)
    verdict = await store.decide([rate(), quota(limit=1)], T0)
    assert not verdict.admitted
    assert verdict.failed == 1
    # The rate was not charged by the refused decision: three still fit.
    assert [await admitted(store, [rate()], T0) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


async def test_quota_counts_cost_until_window_end(store: LimitStore) -> None:
    assert await admitted(store, [quota(cost=3)], T0)
    verdict = await store.decide([quota(cost=3)], T0 + 50)
    assert not verdict.admitted
    assert verdict.remaining == (2,)
    assert verdict.reset[0] == pytest.approx(50.0)
    assert await admitted(store, [quota(cost=2)], T0 + 60)
    assert not await admitted(store, [quota()], T0 + 99)


async def test_quota_long_past_its_window_end_is_still_decided(
    store: LimitStore,
) -> None:
    # A gateway clock well behind Redis' clock: the counter's expiry is
    # already past, which Redis' SET ... PX would refuse if it were not
    # kept to at least 1 ms.
    verdict = await store.decide([rate(), quota(ends_at=T0 - 120)], T0)
    assert verdict.admitted
    assert verdict.remaining == (2, 4)
    assert verdict.reset[1] == pytest.approx(-120.0)


async def test_rolling_units_leave_after_the_window(store: LimitStore) -> None:
    assert await admitted(store, [rolling(cost=3)], T0)
    assert await admitted(store, [rolling()], T0 + 60)
    verdict = await store.decide([rolling()], T0 + 120)
    assert not verdict.admitted
    # The three units of T0's slice leave when that slice is 3 slices old.
    slice_start = (T0 // 60) * 60
    assert verdict.reset[0] == pytest.approx(slice_start + 180 - (T0 + 120))
    assert await admitted(store, [rolling(cost=3)], slice_start + 180)


async def test_concurrency_caps_leases_until_released(store: LimitStore) -> None:
    assert await admitted(store, [lease("a")], T0)
    assert await admitted(store, [lease("b")], T0)
    assert not await admitted(store, [lease("c")], T0)
    await store.release([lease("a")])
    assert await admitted(store, [lease("c")], T0)


async def test_no_checks_are_admitted(store: LimitStore) -> None:
    assert await store.decide([], T0) == (True, -1, (), ())


async def test_concurrency_lease_expires_by_itself(store: LimitStore) -> None:
    assert await admitted(store, [lease("a"), lease("b", key="c2", limit=1)], T0)
    assert not await admitted(store, [lease("x", key="c2", limit=1)], T0 + 29)
    assert await admitted(store, [lease("x", key="c2", limit=1)], T0 + 31)


def _random_checks(rng: random.Random) -> list[Check]:
    choices = [
        rate("r1", limit=4, cost=rng.randint(1, 3), interval=2.5),
        rate("r2", limit=9, cost=rng.randint(1, 2), interval=0.7),
        quota("q1", limit=60, cost=rng.randint(1, 3), ends_at=T0 + 5000),
        rolling("w1", limit=12, cost=rng.randint(1, 2)),
    ]
    return rng.sample(choices, rng.randint(1, 3))


async def test_store_agrees_with_the_reference_evaluation(store: LimitStore) -> None:
    """A seeded random run: every verdict equals the in-memory reference."""
    rng = random.Random(20261204)
    reference = MemoryStore()
    now = T0
    for _ in range(150):
        now += rng.choice([0.0, 0.0, 0.3, 1.1, 7.0])
        checks = _random_checks(rng)
        expected = reference.decide_now(checks, now)
        got = await store.decide(checks, now)
        assert got.admitted == expected.admitted
        assert got.failed == expected.failed
        assert got.remaining == expected.remaining
        assert got.reset == pytest.approx(expected.reset)


async def test_redis_store_is_exact_for_concurrent_clients(redis_prefix: str) -> None:
    """RL-02 in one process: three clients, sixty concurrent decisions."""
    stores = [
        RedisStore(SHARED_REDIS, prefix=redis_prefix, timeout=5.0) for _ in range(3)
    ]
    checks = [rate("race", limit=7, interval=3600.0), quota("race-q", limit=50)]
    try:
        verdicts = await asyncio.gather(
            *(stores[n % 3].decide(checks, T0 + n * 1e-3) for n in range(60))
        )
    finally:
        for store in stores:
            await store.close()
    assert sum(verdict.admitted for verdict in verdicts) == 7


async def test_redis_store_keys_expire_a_minute_after_their_window(
    redis_prefix: str,
) -> None:
    store = RedisStore(
        SHARED_REDIS, prefix=redis_prefix, timeout=5.0, server_clock=False
    )
    checks = [rate(interval=10.0), quota(ends_at=T0 + 100), rolling(), lease("a")]
    try:
        assert (await store.decide(checks, T0)).admitted
        ttls = [await store.client.pttl(redis_prefix + c.key) for c in checks]
    finally:
        await store.close()
    # One rate unit's 10 s, the quota window's 100 s, three 60 s slices, the
    # lease's 30 s; each with the minute's margin, counted by Redis' own clock.
    for ttl, most in zip(ttls, [70_000, 160_000, 240_000, 90_000], strict=True):
        assert most - 5_000 < ttl <= most


async def test_redis_store_decides_in_one_command(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One round trip per decision, however many checks it holds."""
    store = RedisStore(SHARED_REDIS, prefix=redis_prefix, timeout=5.0)
    sent: list[Any] = []
    execute = store.client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(args[0])
        return await execute(*args, **options)

    try:
        await store.decide([rate()], T0)  # loads the script if Redis lacks it
        monkeypatch.setattr(store.client, "execute_command", counted)
        await store.decide([rate(), quota(), rolling(), lease("a")], T0)
        await store.decide([rate()], T0)
    finally:
        await store.close()
    assert sent == [b"EVALSHA", b"EVALSHA"]


async def test_redis_store_reloads_its_script_after_a_flush(
    own_redis: OwnRedis,
) -> None:
    store = RedisStore(own_redis.url, prefix="t:", timeout=5.0, server_clock=False)
    try:
        assert await admitted(store, [rate()], T0)
        await store.client.script_flush()
        assert await admitted(store, [rate()], T0)
        verdict = await store.decide([rate()], T0)
    finally:
        await store.close()
    assert verdict.remaining == (0,)


def test_redis_store_argument_keeps_a_bounded_number_of_shapes() -> None:
    store = RedisStore(SHARED_REDIS, prefix="unused:", timeout=1.0)
    for cost in range(5000):
        keys, argument = store._pack([rate(cost=cost), lease("a")], "redis")
    assert len(store._shapes) <= 4096
    assert keys == [b"unused:r", b"unused:c"]
    assert argument == b"redis rate 3 4999 10.0 0.0 0 - concurrency 2 1 30.0 0.0 0 a"
