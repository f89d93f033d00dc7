"""Redis for tests: the shared server (unique key prefix per test) and a
redis-server a test starts on a free loopback port and stops by pid."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

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


def own_redis_server() -> Iterator[OwnRedis]:
    """Body of an ``own_redis`` fixture: started, yielded, stopped by pid."""
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
