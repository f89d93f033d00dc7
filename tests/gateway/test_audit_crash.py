"""kill -9 a real gateway under load: strict loses nothing a client saw;
batched loses at most the flush window; the chain verifies up to the crash."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from kaitiaki.audit.commands import search_events, verify_sink
from kaitiaki.audit.sinks import Query
from kaitiaki.settings import load_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import Recorder, StandIn, upstream_app
from tests.gateway.gateway_process import gateway_process

pytestmark = pytest.mark.e2e

FLUSH = 0.2
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def upstream() -> Iterator[str]:
    with ThreadServer(upstream_app(Recorder())) as server:
        yield server.url


def _load(url: str, token: str, seconds: float) -> list[tuple[str, float]]:
    """Requests from 4 threads for ``seconds``: (correlation id, time received)."""
    received: list[tuple[str, float]] = []
    deadline = time.monotonic() + seconds

    def worker(number: int) -> None:
        headers = {
            "Accept": "application/fhir+json",
            "Authorization": f"Bearer {token}",
        }
        with httpx.Client(base_url=url, timeout=5) as client:
            for count in range(2000):
                if time.monotonic() > deadline:
                    return
                cid = f"load-{number}-{count}"
                try:
                    response = client.get(
                        "/fhir/Patient", headers={**headers, "X-Correlation-Id": cid}
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    received.append((cid, time.monotonic()))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    return received


@pytest.fixture
def table() -> Iterator[str]:
    name = f"audit_crash_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')


@pytest.mark.parametrize("durability", ["strict", "batched"])
@pytest.mark.parametrize("sink", ["sqlite", "jsonl", "postgresql"])
def test_crash_keeps_the_audit_promise(
    standin: StandIn,
    upstream: str,
    tmp_path: Path,
    durability: str,
    sink: str,
    table: str,
) -> None:
    path = "var/audit.sqlite" if sink == "sqlite" else "var/audit.jsonl"
    audit = (
        f'sink = "{sink}"\npath = "{path}"\ndurability = "{durability}"\n'
        f"flush_interval_seconds = {FLUSH}\ncheckpoint_every_events = 50\n"
    )
    if sink == "postgresql":
        audit += f'database_url = "{PG_URL}"\ntable = "{table}"\n'
    with gateway_process(standin.url, upstream, tmp_path, audit) as gateway:
        stop = [0.0]
        received: list[tuple[str, float]] = []

        def kill_soon() -> None:
            time.sleep(1.5)
            stop[0] = time.monotonic()
            gateway.kill()

        killer = threading.Thread(target=kill_soon)
        killer.start()
        received = _load(gateway.url, standin.token({"client_id": "svc"}), 5)
        killer.join()
        config = gateway.config

    settings = load_settings(config).audit
    settings = settings.model_copy(update={"path": str(tmp_path / path)})
    recorded = {
        str(r["correlation_id"])
        for r in search_events(settings, Query(), limit=100_000)
    }
    assert len(received) > 20
    lost = [(cid, at) for cid, at in received if cid not in recorded]
    if durability == "strict":
        assert lost == []
    else:
        assert all(at > stop[0] - FLUSH - 0.5 for _, at in lost), lost
    (report,) = verify_sink(settings, [])
    assert report.ok, (report.position, report.problem)
    assert report.checkpoints >= 1


def test_two_gateways_share_one_postgres_table_and_verify(
    standin: StandIn, upstream: str, tmp_path: Path, table: str
) -> None:
    audit = f'sink = "postgresql"\ndatabase_url = "{PG_URL}"\ntable = "{table}"\n'
    token = standin.token()
    headers = {"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}
    with (
        gateway_process(
            standin.url, upstream, tmp_path / "a", audit, instance="gw-a"
        ) as a,
        gateway_process(
            standin.url, upstream, tmp_path / "b", audit, instance="gw-b"
        ) as b,
    ):
        for _ in range(10):
            for gateway in (a, b):
                assert httpx.get(
                    f"{gateway.url}/fhir/Patient", headers=headers
                ).is_success
        a.stop()
        b.stop()

    settings = load_settings(a.config).audit
    settings = settings.model_copy(
        update={"path": str(tmp_path / "a" / "var" / "audit.jsonl")}
    )
    other = tmp_path / "b" / "var" / "keys" / "audit-checkpoint.pub.jwk"
    reports = verify_sink(settings, [other])

    assert [(r.instance, r.ok) for r in reports] == [("gw-a", True), ("gw-b", True)]
    requests = search_events(settings, Query(event_type="request"), limit=100)
    assert sorted({str(r["instance"]) for r in requests}) == ["gw-a", "gw-b"]
    assert len(requests) == 20
