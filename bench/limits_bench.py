"""Rate-limit decision cost: memory and Redis, beside a bare Redis PING.

Run: ``.venv/bin/python bench/limits_bench.py [--rounds N] [--redis URL]
[--dedicated]``.
One decision at a time, so the Redis numbers are latencies, not throughput.
The machines here are shared, so in-process numbers are the best of several
repeats (as ``timeit`` advises), and every Redis decision is timed right
after a PING on the same client and connection, cases taking turns in blocks,
and compared by medians. Reported in µs:

* memory store alone: one GCRA check; rate + daily + monthly quota;
* ``RateLimits.check_client`` on memory: the whole throttle step (route group,
  cost, policy lookup, store, headers);
* a bare ``PING`` with the same redis-py client (the anchor); an ``EVALSHA``
  of a script that only returns a constant (the floor for any script); one
  that runs only ``TIME``, ``GET`` and ``SET ... PX`` (the floor for a rate
  decided on Redis' clock);
* the Redis store (one ``EVALSHA`` per decision; one check also on the
  gateway's clock, without ``TIME``) and ``check_client`` on it, as ratios to
  the PING, with the lowest and highest ratio of one block of 200 pairs.

The Redis cases run against the Redis given, with the bench and Redis
wherever the scheduler puts them. With ``--dedicated`` they run a second time,
against a redis-server the bench starts on a free loopback port, pinned to one
CPU while the bench pins itself to another, as when Redis is its own host; the
bench stops that server by its process id at the end, and prints both setups
side by side.

Redis must be on loopback. Keys use a unique prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from urllib.parse import urlsplit

import redis

from kaitiaki.limits import LimitSettings, RateLimits
from kaitiaki.limits.memory import MemoryStore
from kaitiaki.limits.policy import Policy
from kaitiaki.limits.redisstore import RedisStore

START = 1_800_000_000.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
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


# The commands any decision on Redis' clock needs for one rate (TIME, GET, SET
# PX), with nothing parsed and a fixed reply: what is left above this is the
# store's own work, in Redis and in Python.
FLOOR = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], string.format('%.17g', tat + 1e-6), 'PX', '60001')
return {ok = '1 -1 0 0'}
"""
CONSTANT = "return {ok = '1 -1 0 0'}"
BLOCK = 200

Case = Callable[[], Awaitable[object]]
Numbers = dict[str, tuple[float, float, float, float]]


async def _interleaved(cases: dict[str, tuple[Case, Case]], rounds: int) -> Numbers:
    """Each decision right after a PING on the same client; cases take turns
    in blocks, in a shuffled order each round, so load that comes and goes
    falls on every case alike.

    Per case: the median PING and decision in µs over all pairs, and the
    lowest and highest ratio of one block's medians.
    """
    pings: dict[str, list[float]] = {name: [] for name in cases}
    others: dict[str, list[float]] = {name: [] for name in cases}
    blocks: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    shuffle = random.Random(20261204).shuffle
    for _ in range(max(1, rounds // BLOCK)):
        shuffle(order)
        for name in order:
            ping, measured = cases[name]
            block_pings, block_others = [], []
            for _ in range(BLOCK):
                started = time.perf_counter()
                await ping()
                middle = time.perf_counter()
                await measured()
                block_pings.append(middle - started)
                block_others.append(time.perf_counter() - middle)
            pings[name] += block_pings
            others[name] += block_others
            ratio = statistics.median(block_others) / statistics.median(block_pings)
            blocks[name].append(ratio)
    return {
        name: (
            statistics.median(pings[name]) * 1e6,
            statistics.median(others[name]) * 1e6,
            min(blocks[name]),
            max(blocks[name]),
        )
        for name in cases
    }


async def redis_cases(
    url: str, prefix: str, stack: AsyncExitStack
) -> dict[str, tuple[Case, Case]]:
    """The Redis cases against one server; ``stack`` closes their clients."""
    store, clock = RedisStore(url, prefix=prefix, timeout=2.0), Clock()
    gateway = RedisStore(url, prefix=prefix + "g:", timeout=2.0, server_clock=False)
    stack.push_async_callback(gateway.close)
    limits = RateLimits(LimitSettings.model_validate(SETTINGS), store=store)
    stack.push_async_callback(limits.close)  # and the store it decides on
    policy = Policy(LimitSettings.model_validate(SETTINGS))
    one = policy.request_checks("search", 1, START, client_id="bench")
    three = policy.request_checks("read", 1, START, client_id="bench")
    client = store.client
    constant = await client.script_load(CONSTANT)
    floor = await client.script_load(FLOOR)
    # Called the way the store calls its script: EVALSHA, one key, one argument.
    key, argument = (prefix + "floor").encode(), b"x"
    return {
        "EVALSHA constant": (
            store.ping,
            lambda: client.evalsha(constant, 1, key, argument),
        ),
        "TIME + GET + SET floor": (
            store.ping,
            lambda: client.evalsha(floor, 1, key, argument),
        ),
        "redis store, 1 check": (store.ping, lambda: store.decide(one, clock.tick())),
        "  on the gateway's clock": (
            gateway.ping,
            lambda: gateway.decide(one, clock.tick()),
        ),
        "redis store, 3 checks": (
            store.ping,
            lambda: store.decide(three, clock.tick()),
        ),
        "check_client, redis": (
            store.ping,
            lambda: limits.check_client("bench", clock.tick(), interaction="read"),
        ),
    }


def _delete_keys(url: str, prefix: str) -> None:
    cleanup = redis.Redis.from_url(url)
    try:
        keys = list(cleanup.scan_iter(match=prefix + "*"))
        if keys:
            cleanup.delete(*keys)
    finally:
        cleanup.close()


async def redis_numbers(url: str, rounds: int) -> Numbers:
    prefix = f"kaitiaki-bench:{uuid.uuid4().hex}:"
    try:
        async with AsyncExitStack() as stack:
            cases = await redis_cases(url, prefix, stack)
            for ping, case in cases.values():
                await ping()
                await case()
            return await _interleaved(cases, rounds)
    finally:
        _delete_keys(url, prefix)


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def dedicated_redis(cpu: int) -> Iterator[str]:
    """A redis-server of the bench's own on a free loopback port, pinned to
    ``cpu`` (with every thread it starts), no persistence, in a temporary
    directory; stopped by its process id on the way out."""
    redis_server, taskset = shutil.which("redis-server"), shutil.which("taskset")
    if redis_server is None or taskset is None:
        raise SystemExit("--dedicated needs redis-server and taskset on PATH")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="kaitiaki-bench-redis-") as directory:
        # taskset sets the affinity, then execs redis-server: the process id
        # is the server's, and threads it starts later inherit the CPU.
        process = subprocess.Popen(
            [
                *(taskset, "-c", str(cpu), redis_server),
                *("--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                *("--dir", directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not _reachable(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("--dedicated: redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def _row(numbers: tuple[float, float, float, float]) -> str:
    ping, value, low, high = numbers
    return f"{value:9.1f} {ping:9.1f} {value / ping:7.2f}  {low:.2f}-{high:.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument(
        "--redis-rounds", type=int, default=3000, help="PING pairs per Redis case"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--dedicated",
        action="store_true",
        help="also measure against a redis-server of the bench's own, pinned to "
        "one CPU while the bench is pinned to another",
    )
    parser.add_argument(
        "--time-limit", type=float, default=300.0, help="seconds for the whole run"
    )
    args = parser.parse_args()
    if urlsplit(args.redis).hostname not in LOOPBACK:
        parser.error("--redis: a loopback URL (127.0.0.1, ::1 or localhost)")
    available = sorted(os.sched_getaffinity(0))
    if args.dedicated and len(available) < 2:
        parser.error("--dedicated: needs two CPUs")
    try:
        async with asyncio.timeout(args.time_limit):
            await run(
                args.redis, args.rounds, args.redis_rounds, args.dedicated, available
            )
    except TimeoutError:
        raise SystemExit(f"stopped after --time-limit {args.time_limit:g} s") from None


async def run(
    url: str, rounds: int, redis_rounds: int, dedicated: bool, available: list[int]
) -> None:
    columns = f"{'µs':>9} {'PING µs':>9} {'ratio':>7}  blocks"
    if dedicated:
        client_cpu, server_cpu = available[:2]
        given = f"redis at {urlsplit(url).netloc}, unpinned"
        own = f"own redis on CPU {server_cpu}, bench on CPU {client_cpu}"
        print(f"{'':<26} {given:<37}  {own}")
        print(f"{'measure':<26} {columns}     {columns}")
    else:
        print(f"{'measure':<26} {columns}")
    numbers = memory_numbers(rounds)
    numbers["check_client, memory"] = await facade_memory(rounds)
    for name, value in numbers.items():
        print(f"{name:<26} {value:9.2f}")
    shared = await redis_numbers(url, redis_rounds)
    if not dedicated:
        for name, case in shared.items():
            print(f"{name:<26} {_row(case)}")
        return
    # The given Redis first, unpinned as without --dedicated; then the
    # bench's own server, it and the bench each on a CPU of its own.
    unpinned = os.sched_getaffinity(0)
    with dedicated_redis(server_cpu) as own_url:
        os.sched_setaffinity(0, {client_cpu})
        try:
            pinned = await redis_numbers(own_url, redis_rounds)
        finally:
            os.sched_setaffinity(0, unpinned)
    for name, case in shared.items():
        print(f"{name:<26} {_row(case)}  {_row(pinned[name])}")


if __name__ == "__main__":
    asyncio.run(main())
