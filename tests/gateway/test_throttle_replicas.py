"""RL-02 across replicas: three ``kaitiaki serve`` processes share the Redis at
127.0.0.1:6379 and concurrent clients hit all three; the admitted requests
must equal the limit exactly, never more. Also: SIGHUP reloads the limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kaitiaki.demo import wait_for_port
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import Recorder, StandIn, upstream_app
from tests.gateway.throttle_support import bearer, settings_toml
from tests.redis_support import (
    SHARED_REDIS,
    delete_prefix,
    require_redis,
    unique_prefix,
)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

LIMITS = """backend = "redis"
redis_url = "{url}"
key_prefix = "{prefix}"
address_rate = "100000/minute"
default_rate = "100000/minute"
disclose_policy = true
[limits.clients]
racer = "8/hour"
counted = "daily-11"
[limits.plans.daily-11."*"]
daily = 11
"""


@dataclass
class Replicas:
    urls: list[str]
    configs: list[Path]
    processes: list[subprocess.Popen[bytes]]
    recorder: Recorder


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kaitiaki", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KAITIAKI_LOG_LEVEL": "WARNING"},
        )


@pytest.fixture
def replicas(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[Replicas]:
    require_redis()
    prefix = unique_prefix()
    limits = LIMITS.format(url=SHARED_REDIS, prefix=prefix)
    with ThreadServer(upstream_app(recorder)) as upstream:
        ports = [free_port() for _ in range(3)]
        configs, processes = [], []
        try:
            for index, port in enumerate(ports):
                text = settings_toml(
                    standin.url, upstream.url, tmp_path / f"audit{index}.jsonl", limits
                )
                text = text.replace("port = 0", f"port = {port}", 1)
                config = tmp_path / f"gateway{index}.toml"
                config.write_text(text.replace("throttle-gw", f"replica-{index}"))
                config.chmod(0o600)  # the gateway refuses settings others can read
                configs.append(config)
                processes.append(_start(config, tmp_path / f"gateway{index}.log"))
            for port in ports:
                assert wait_for_port("127.0.0.1", port, timeout=30), "no gateway"
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            yield Replicas(urls, configs, processes, recorder)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            delete_prefix(SHARED_REDIS, prefix)


def _race(replicas: Replicas, token: str, count: int) -> list[int]:
    clients = [httpx.Client(base_url=url, timeout=20) for url in replicas.urls]
    try:

        def one(n: int) -> int:
            client = clients[n % len(clients)]
            return client.get("/fhir/Patient", headers=bearer(token)).status_code

        with ThreadPoolExecutor(max_workers=24) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for client in clients:
            client.close()


def _warm(replicas: Replicas, standin: StandIn) -> None:
    token = standin.token({"client_id": "warm-up", "sub": "warm-up"})
    for url in replicas.urls:
        response = httpx.get(f"{url}/fhir/Patient", headers=bearer(token), timeout=20)
        assert response.status_code == 200
    replicas.recorder.requests.clear()


def test_three_replicas_admit_exactly_the_limit(
    replicas: Replicas, standin: StandIn
) -> None:
    _warm(replicas, standin)

    rate = _race(replicas, standin.token({"client_id": "racer", "sub": "racer"}), 90)
    assert rate.count(200) == 8
    assert rate.count(429) == 82
    assert len(replicas.recorder.requests) == 8

    quota = _race(
        replicas, standin.token({"client_id": "counted", "sub": "counted"}), 60
    )
    assert quota.count(200) == 11
    assert quota.count(429) == 49
    assert len(replicas.recorder.requests) == 19


def test_sighup_reloads_limits_without_restart(
    replicas: Replicas, standin: StandIn
) -> None:
    _warm(replicas, standin)
    token = standin.token({"client_id": "reloaded", "sub": "reloaded"})
    url = replicas.urls[0] + "/fhir/Patient"
    config = replicas.configs[0]
    config.write_text(
        config.read_text().replace(
            "[limits.clients]", '[limits.clients]\nreloaded = "2/hour"'
        )
    )
    replicas.processes[0].send_signal(signal.SIGHUP)
    statuses: list[int] = []
    for _ in range(50):
        statuses.append(httpx.get(url, headers=bearer(token), timeout=20).status_code)
        if 429 in statuses:
            break
    # Until the signal is handled the old, generous default applies; then 2/hour.
    assert statuses[-1] == 429
    assert replicas.processes[0].poll() is None
