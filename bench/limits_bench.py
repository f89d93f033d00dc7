"""Rate-limit decision cost: memory and Redis, beside a bare Redis PING.

Run: ``.venv/bin/python bench/limits_bench.py [--rounds N] [--redis URL]``.
One decision at a time, so the Redis numbers are latencies, not throughput.
The machines here are shared, so in-process numbers are the best of several
repeats (as ``timeit`` advises), and every Redis decision is timed right
after a PING on the same connection and compared by medians. Reported in µs:

* memory store alone: one GCRA check; rate + daily + monthly quota;
* ``RateLimits.check_client`` on memory: the whole throttle step (route group,
  cost, policy lookup, store, headers);
* a bare ``PING`` with the same redis-py client (the anchor); an ``EVALSHA``
  of a script that only returns a constant (the floor for any script);
* the Redis store (one ``EVALSHA`` per decision) and ``check_client`` on it,
  as ratios to the PING.

Keys use a unique prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable

import redis

from kaitiaki.limits import LimitSettings, RateLimits
from kaitiaki.limits.memory import MemoryStore
from kaitiaki.limits.policy import Policy
from kaitiaki.limits.redisstore import RedisStore

START = 1_800_000_000.0
SETTINGS = {
    "default_rate": "1000000/second",
    "routes": {"read": {"daily": 10**12, "monthly": 10**12}},
}


def _best(function: Callable[[], object], rounds: int) -> float:
    return min(timeit.repeat(function, number=rounds, repeat=7)) / rounds * 1e6


class Clock:
    def __init__(self) -> None:
        self.now = START

    def tick(self) -> float:
        self.now += 1e-6
        return self.now


def memory_numbers(rounds: int) -> dict[str, float]:
    policy = Policy(LimitSettings.model_validate(SETTINGS))
    one = policy.request_checks("search", 1, START, client_id="bench")
    three = policy.request_checks("read", 1, START, client_id="bench")
    store, clock = MemoryStore(), Clock()
    return {
        "memory store, 1 check": _best(
            lambda: store.decide_now(one, clock.tick()), rounds
        ),
        "memory store, 3 checks": _best(
            lambda: store.decide_now(three, clock.tick()), rounds
        ),
    }


async def facade_memory(rounds: int) -> float:
    limits, clock = RateLimits(LimitSettings.model_validate(SETTINGS)), Clock()
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(rounds):
            await limits.check_client("bench", clock.tick(), interaction="read")
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
    await limits.close()
    return best


async def _paired(
    ping: Callable[[], Awaitable[object]],
    measured: Callable[[], Awaitable[object]],
    rounds: int,
) -> tuple[float, float]:
    pings, others = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        await ping()
        middle = time.perf_counter()
        await measured()
        pings.append(middle - started)
        others.append(time.perf_counter() - middle)
    return statistics.median(pings) * 1e6, statistics.median(others) * 1e6


async def redis_numbers(url: str, rounds: int) -> dict[str, tuple[float, float]]:
    prefix = f"kaitiaki-bench:{uuid.uuid4().hex}:"
    store, clock = RedisStore(url, prefix=prefix, timeout=2.0), Clock()
    policy = Policy(LimitSettings.model_validate(SETTINGS))
    one = policy.request_checks("search", 1, START, client_id="bench")
    three = policy.request_checks("read", 1, START, client_id="bench")
    settings = LimitSettings.model_validate(
        {**SETTINGS, "backend": "redis", "redis_url": url, "key_prefix": prefix}
    )
    limits = RateLimits(settings)
    constant = store.client.register_script("return '1 -1 0 0'")
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "EVALSHA constant": lambda: constant(keys=[prefix + "c"], args=["x"]),
        "redis store, 1 check": lambda: store.decide(one, clock.tick()),
        "redis store, 3 checks": lambda: store.decide(three, clock.tick()),
        "check_client, redis": lambda: limits.check_client(
            "bench", clock.tick(), interaction="read"
        ),
    }
    try:
        for case in cases.values():
            await case()
        return {
            name: await _paired(store.ping, case, rounds)
            for name, case in cases.items()
        }
    finally:
        await limits.close()
        await store.close()
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--redis-rounds", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    print(f"{'measure':<26} {'µs':>9} {'PING µs':>9} {'ratio':>7}")
    numbers = memory_numbers(args.rounds)
    numbers["check_client, memory"] = await facade_memory(args.rounds)
    for name, value in numbers.items():
        print(f"{name:<26} {value:9.2f}")
    for name, (ping, value) in (
        await redis_numbers(args.redis, args.redis_rounds)
    ).items():
        print(f"{name:<26} {value:9.1f} {ping:9.1f} {value / ping:7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
