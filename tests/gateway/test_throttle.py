"""Throttling through the whole gateway: RL-01, RL-02 and RL-06 of
shared/cases/attacks.md, headers, and one audit event per refusal."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.gateway.conftest import GatewayUnderTest, Recorder, StandIn
from tests.gateway.throttle_support import FHIR, bearer, throttled_gateway
from tests.redis_support import OwnRedis, own_redis_server


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    yield from own_redis_server()


def statuses(gw: GatewayUnderTest, token: str, count: int) -> list[int]:
    return [
        gw.client.get("/fhir/Patient", headers=bearer(token)).status_code
        for _ in range(count)
    ]


SPOOFED = [
    lambda n: {"X-Forwarded-For": f"10.0.0.{n}"},
    lambda n: {"X-Forwarded-For": f"10.0.{n}.1, 127.0.0.1"},
    lambda n: {"x-FORWARDED-for": f"192.0.2.{n}"},
    lambda n: {"Forwarded": f"for=10.1.0.{n};proto=https"},
    lambda n: {"Forwarded": f'for="[2001:db8::{n:x}]"'},
    lambda n: {"X-Real-IP": f"10.2.0.{n}"},
    lambda n: {"True-Client-IP": f"10.3.0.{n}"},
    lambda n: {"CF-Connecting-IP": f"10.4.0.{n}"},
    lambda n: {"X-Client-IP": f"10.5.0.{n}"},
    lambda n: {"X-Originating-IP": f"10.6.0.{n}"},
    lambda n: {"X-Cluster-Client-IP": f"10.7.0.{n}"},
]


def test_rl01_spoofed_forwarding_headers_do_not_change_the_address_key(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    limits = 'address_rate = "5/hour"\ndefault_rate = "1000/minute"'
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, _):
        token = standin.token()
        statuses = []
        for n, spoof in zip(range(1, 45), itertools.cycle(SPOOFED), strict=False):
            path = "/fhir/metadata" if n % 2 else "/fhir/Patient"
            headers = {**bearer(token), **spoof(n)}
            statuses.append(gw.client.get(path, headers=headers).status_code)
        assert 429 not in statuses[:5]
        assert set(statuses[5:]) == {429}
        assert len(gw.recorder.requests) <= 5
        refused = [e for e in gw.events() if e["status"] == 429]
        assert len(refused) == 39
        assert {(e["refusal_code"], e["refusal_step"]) for e in refused} == {
            ("rate_address", "edge")
        }
        assert {e["client_address"] for e in gw.events()} == {"127.0.0.1"}


def test_rl02_parallel_requests_never_exceed_the_limit(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    limits = 'default_rate = "5/hour"\ndisclose_policy = true'
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, _):
        # Warm the JWKS cache with another client: concurrent first requests
        # racing its first fetch get 503 (a JWKS cache matter, not the limit's).
        warm = standin.token({"client_id": "warm-up", "sub": "warm-up"})
        assert gw.client.get("/fhir/Patient", headers=bearer(warm)).status_code == 200
        gw.recorder.requests.clear()
        token = standin.token()

        def one(n: int) -> httpx.Response:
            # Several spellings of the same route group and client.
            path = ["/fhir/Patient", "/fhir/Observation?code=x", "/fhir/Encounter"]
            return gw.client.get(path[n % 3], headers=bearer(token))

        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(one, range(50)))

        served = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        assert (len(served), len(refused)) == (5, 45)
        assert len(gw.recorder.requests) == 5
        assert all("ratelimit" in r.headers for r in served)
        policy = served[0].headers["ratelimit-policy"]
        assert policy == '"client-search-rate";q=5;w=3600'
        for response in refused:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["ratelimit"].startswith('"client-search-rate";r=0')
            assert response.json()["issue"][0]["code"] == "throttled"
        codes = [e["refusal_code"] for e in gw.events() if e["status"] == 429]
        assert codes == ["rate_client"] * 45
        assert len(gw.events()) == 51


def test_throttle_headers_withheld_by_default_and_hnz_names(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    limits = 'default_rate = "10/minute"\nheaders = "x-ratelimit"'
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, _):
        response = gw.client.get("/fhir/Patient", headers=bearer(standin.token()))
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == "9"
        assert response.headers["x-ratelimit-reset"] == "6000"
        assert "x-ratelimit-limit" not in response.headers
        assert "ratelimit-policy" not in response.headers


def test_rl06_dead_redis_port_refuses_with_503_and_audits(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    limits = f'backend = "redis"\nredis_url = "redis://127.0.0.1:{free_port()}/0"'
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, app):
        responses = [gw.client.get("/fhir/metadata", headers=FHIR) for _ in range(5)]
        assert {r.status_code for r in responses} == {503}
        assert responses[0].headers["retry-after"] == "5"
        assert responses[0].json()["issue"][0]["code"] == "transient"
        assert gw.recorder.requests == []
        codes = {e["refusal_code"] for e in gw.events()}
        assert codes == {"limiter_unavailable"}
        assert app.limits is not None
        assert app.limits.health.state == "down"
        assert app.limits.health.unavailable_refusals == 5


def test_rl06_redis_stopped_then_back_recovers_by_itself(
    standin: StandIn, recorder: Recorder, tmp_path: Path, own_redis: OwnRedis
) -> None:
    limits = (
        f'backend = "redis"\nredis_url = "{own_redis.url}"\n'
        'default_rate = "3/hour"\nstore_retry_seconds = 0'
    )
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, _):
        token = standin.token()
        assert statuses(gw, token, 2) == [200, 200]
        own_redis.stop()
        assert set(statuses(gw, token, 100)) == {503}
        own_redis.start()
        assert statuses(gw, token, 3) == [200, 200, 200]
        assert statuses(gw, token, 1) == [429]
        assert len(gw.recorder.requests) == 5
        codes = [e["refusal_code"] for e in gw.events()]
        assert codes.count("limiter_unavailable") == 100
        changes = [
            (r["action"], r["outcome"], r.get("detail"))
            for r in gw.records()
            if r["event_type"] == "security" and r["action"].startswith("limiter_")
        ]
        assert changes == [
            ("limiter_degraded", "failure", "down"),
            ("limiter_recovered", "success", None),
        ]


def test_rl06_local_mode_caps_at_a_fraction_when_redis_stops(
    standin: StandIn, recorder: Recorder, tmp_path: Path, own_redis: OwnRedis
) -> None:
    limits = (
        f'backend = "redis"\nredis_url = "{own_redis.url}"\n'
        'default_rate = "12/hour"\non_store_failure = "local"\nlocal_fraction = 0.25'
    )
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, app):
        own_redis.stop()
        seen = statuses(gw, standin.token(), 100)
        assert seen[:3] == [200, 200, 200]
        assert set(seen[3:]) == {429}
        assert len(gw.recorder.requests) == 3
        codes = {e["refusal_code"] for e in gw.events() if e["status"] == 429}
        assert codes == {"rate_client_local"}
        assert app.limits is not None
        assert app.limits.health.state == "degraded"


def test_search_form_body_is_charged_at_its_full_cost(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    # The URL's unit is charged first; a refusal after the body keeps it.
    limits = 'default_rate = "5/hour"'
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, _):
        headers = {
            **bearer(standin.token()),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        includes = (
            "_include=Patient:general-practitioner&_include=Patient:link"
            "&_include=Patient:organization&_revinclude=Observation:subject"
            "&_revinclude=Encounter:subject"
        )
        costly = gw.client.post(
            "/fhir/Patient/_search", headers=headers, content=includes
        )
        assert costly.status_code == 429
        assert costly.json()["issue"][0]["code"] == "too-costly"
        assert "retry-after" not in costly.headers

        three = (
            "_include=Patient:general-practitioner&_include=Patient:link"
            "&_include=Patient:organization"
        )
        fits = gw.client.post("/fhir/Patient/_search", headers=headers, content=three)
        assert fits.status_code == 201  # the stand-in upstream answers POST so
        assert fits.headers["ratelimit"] == '"limit";r=0;t=3600'
        after = gw.client.get("/fhir/Patient", headers=bearer(standin.token()))
        assert after.status_code == 429
        assert len(gw.recorder.requests) == 1
        codes = [e["refusal_code"] for e in gw.events()]
        assert codes == ["cost_over_limit", None, "rate_client"]


def test_subjects_and_clients_have_separate_buckets(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    limits = 'default_rate = "1000/hour"\n[limits.subject."*"]\nrate = "2/hour"'
    with throttled_gateway(standin, recorder, tmp_path, limits) as (gw, _):
        user_a = standin.token({"sub": "user-a", "acr": "3"})
        user_b = standin.token({"sub": "user-b", "acr": "3"})
        assert statuses(gw, user_a, 3) == [200, 200, 429]
        assert statuses(gw, user_b, 2) == [200, 200]
        # A client acting for itself (sub = client_id) has no subject limit.
        assert statuses(gw, standin.token(), 3) == [200, 200, 200]
        refused = [e for e in gw.events() if e["status"] == 429]
        assert [(e["refusal_code"], e["subject"]) for e in refused] == [
            ("rate_subject", "user-a")
        ]


def test_upstream_ratelimit_headers_are_replaced_by_the_gateways(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    async def chatty(request: Request) -> Response:
        return JSONResponse(
            {"resourceType": "Bundle", "type": "searchset"},
            headers={"ratelimit": '"upstream";r=999;t=1', "x-other": "kept"},
            media_type="application/fhir+json",
        )

    app = Starlette(routes=[Route("/{path:path}", chatty)])
    limits = 'default_rate = "10/minute"'
    with throttled_gateway(standin, recorder, tmp_path, limits, app) as (gw, _):
        response = gw.client.get("/fhir/Patient", headers=bearer(standin.token()))
        assert response.status_code == 200
        assert response.headers.get_list("ratelimit") == ['"limit";r=9;t=6']
        assert response.headers["x-other"] == "kept"
