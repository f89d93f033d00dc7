"""Stores under test: memory, the shared Redis (unique key prefix per test),
and a Redis server a test starts and stops itself."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import redis

from kaitiaki.limits.checks import LimitStore
from kaitiaki.limits.memory import MemoryStore
from kaitiaki.limits.redisstore import RedisStore
from tests.conftest import backends_required, free_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_redis() -> None:
    if not _reachable("127.0.0.1", 6379):
        if backends_required():
            pytest.fail("Redis at 127.0.0.1:6379 is needed and not running")
        pytest.skip("Redis at 127.0.0.1:6379 is not running")


def unique_prefix() -> str:
    return f"kaitiaki-test:{uuid.uuid4().hex}:"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_redis()
    prefix = unique_prefix()
    yield prefix
    delete_prefix(SHARED_REDIS, prefix)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LimitStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    require_redis()
    prefix = unique_prefix()
    backend = RedisStore(SHARED_REDIS, prefix=prefix, timeout=2.0)
    try:
        yield backend
    finally:
        await backend.close()
        delete_prefix(SHARED_REDIS, prefix)


@dataclass
class OwnRedis:
    """A redis-server of the test's own on a free loopback port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed to test a store that goes down")
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("own redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
