"""Three gateway instances behind one public URL behave as one gateway: they
share Redis (rate limits, DPoP replay cache) and PostgreSQL (the audit trail),
so limits stay exact, a DPoP proof used at one instance is refused at the
others, and the combined audit export verifies chain by chain."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from joserfc.jwk import ECKey

from kaitiaki.audit.commands import search_events, verify_sink
from kaitiaki.audit.sinks import Query
from kaitiaki.demo import wait_for_port
from kaitiaki.issuer.client import build_dpop_proof
from kaitiaki.settings import load_settings
from tests.conftest import ThreadServer, backends_required, free_port
from tests.gateway.conftest import Recorder, StandIn, upstream_app
from tests.redis_support import SHARED_REDIS, delete_prefix, require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PUBLIC = "https://gw.example"
FHIR = {"Accept": "application/fhir+json"}

SETTINGS = """
[gateway]
host = "127.0.0.1"
port = {port}
public_url = "{public}"
upstream = "{upstream}/fhir"
instance = "replica-{index}"
[auth]
issuer = "{issuer}"
audience = "{public}/fhir"
algorithms = ["ES256"]
[auth.dpop]
replay_store = "redis"
redis_url = "{redis}"
redis_prefix = "{prefix}dpop:"
[authorise]
client_credentials = "allow"
[limits]
backend = "redis"
redis_url = "{redis}"
key_prefix = "{prefix}rl:"
address_rate = "100000/minute"
default_rate = "100000/minute"
[limits.clients]
racer = "9/hour"
[audit]
sink = "postgresql"
database_url = "{pg}"
table = "{table}"
"""


@dataclass
class Instances:
    urls: list[str]
    roots: list[Path]
    config: Path


def _require_postgres() -> None:
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError:
        if backends_required():
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is needed and not running")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")


def _start(root: Path, text: str) -> subprocess.Popen[bytes]:
    root.mkdir(parents=True)
    config = root / "kaitiaki.toml"
    config.write_text(text)
    config.chmod(0o600)  # the gateway refuses settings others can read
    with (root / "gateway.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kaitiaki", "serve", "--config", str(config)],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KAITIAKI_LOG_LEVEL": "WARNING"},
        )


@pytest.fixture
def instances(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[Instances]:
    require_redis()
    _require_postgres()
    prefix = f"kaitiaki-test:{uuid.uuid4().hex}:"
    table = f"audit_scaleout_{uuid.uuid4().hex[:12]}"
    processes: list[subprocess.Popen[bytes]] = []
    with ThreadServer(upstream_app(recorder)) as upstream:
        ports = [free_port() for _ in range(3)]
        roots = [tmp_path / f"replica-{index}" for index in range(3)]
        try:
            for index, (port, root) in enumerate(zip(ports, roots, strict=True)):
                text = SETTINGS.format(
                    port=port,
                    public=PUBLIC,
                    upstream=upstream.url,
                    index=index,
                    issuer=standin.url,
                    redis=SHARED_REDIS,
                    prefix=prefix,
                    pg=PG_URL,
                    table=table,
                )
                processes.append(_start(root, text))
            for port, root in zip(ports, roots, strict=True):
                started = wait_for_port("127.0.0.1", port, timeout=30)
                assert started, (root / "gateway.log").read_text()[-2000:]
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            yield Instances(urls, roots, roots[0] / "kaitiaki.toml")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                process.wait(timeout=20)
            delete_prefix(SHARED_REDIS, prefix)
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def _warm(instances: Instances, standin: StandIn) -> None:
    # Every instance fetches the JWKS once before the race starts.
    token = standin.token({"client_id": "warm-up", "sub": "warm-up"})
    for url in instances.urls:
        reply = httpx.get(f"{url}/fhir/Patient", headers={**FHIR, **_bearer(token)})
        assert reply.status_code == 200, reply.text


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_three_instances_share_limits_replay_cache_and_audit(
    instances: Instances, standin: StandIn, recorder: Recorder
) -> None:
    _warm(instances, standin)
    recorder.requests.clear()

    # Exact limits: 60 concurrent requests spread over the three instances.
    racer = standin.token({"client_id": "racer", "sub": "racer"})

    def one(n: int) -> int:
        url = instances.urls[n % 3]
        headers = {**FHIR, **_bearer(racer)}
        return httpx.get(f"{url}/fhir/Patient", headers=headers, timeout=20).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(one, range(60)))
    assert statuses.count(200) == 9
    assert statuses.count(429) == 51
    assert len(recorder.requests) == 9

    # One DPoP proof: served once, refused at every other instance.
    key = ECKey.generate_key("P-256", private=True)
    bound = standin.token(
        {"client_id": "holder", "sub": "holder", "cnf": {"jkt": key.thumbprint()}}
    )
    proof = build_dpop_proof(
        key,
        "GET",
        f"{PUBLIC}/fhir/Patient",
        bound,
        now=int(time.time()),
        jti=secrets.token_urlsafe(16),
    )
    headers = {**FHIR, "Authorization": f"DPoP {bound}", "DPoP": proof}
    replies = [
        httpx.get(f"{url}/fhir/Patient", headers=headers) for url in instances.urls
    ]
    assert [reply.status_code for reply in replies] == [200, 401, 401]
    assert len(recorder.requests) == 10

    # The combined audit export: one chain per instance, each verifiable.
    settings = load_settings(instances.config).audit
    settings = settings.model_copy(
        update={"path": str(instances.roots[0] / "var" / "audit.sqlite")}
    )
    others = [
        root / "var" / "keys" / "audit-checkpoint.pub.jwk"
        for root in instances.roots[1:]
    ]
    reports = verify_sink(settings, others)
    assert sorted((r.instance, r.ok) for r in reports) == [
        ("replica-0", True),
        ("replica-1", True),
        ("replica-2", True),
    ]
    records = search_events(settings, Query(event_type="request"), limit=1000)
    assert len(records) == 3 + 60 + 3
    refused = [r for r in records if r["status"] == 429]
    assert len(refused) == 51
    assert {r["refusal_code"] for r in refused} == {"rate_client"}
    replayed = [r for r in records if r["status"] == 401]
    assert [(r["instance"], r["refusal_step"]) for r in replayed] == [
        ("replica-1", "authenticate"),
        ("replica-2", "authenticate"),
    ], replayed
