"""The throttle facade: refusals, headers, quotas over midnight, fail-closed
and degraded modes, reloads. Time is injected; nothing sleeps."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kaitiaki.errors import (
    ConfigError,
    CostOverLimit,
    LimiterUnavailable,
    RateLimited,
    StoreUnavailable,
)
from kaitiaki.limits import LimitSettings, RateLimits
from kaitiaki.limits.checks import Check, Verdict
from kaitiaki.limits.memory import MemoryStore
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


class FlakyStore(MemoryStore):
    """A memory store that can be switched off, counting every call."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    async def decide(self, checks: Sequence[Check], now: float) -> Verdict:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("redis: ConnectionError")
        return await super().decide(checks, now)


def limits(store: Any = None, **settings: Any) -> RateLimits:
    return RateLimits(LimitSettings.model_validate(settings), store=store)


async def spend(rl: RateLimits, count: int, now: float = NOW, **kw: Any) -> list[str]:
    results = []
    for _ in range(count):
        try:
            await rl.check_client("c1", now, interaction="search-type", **kw)
        except RateLimited as refusal:
            results.append(refusal.detail)
        else:
            results.append("ok")
    return results


async def test_client_over_rate_is_refused_with_retry_after() -> None:
    rl = limits(default_rate="3/minute")
    assert await spend(rl, 4) == ["ok", "ok", "ok", "rate_client"]
    with pytest.raises(RateLimited) as caught:
        await rl.check_client("c1", NOW + 5, interaction="search-type")
    assert caught.value.status == 429
    assert caught.value.issue_code == "throttled"
    assert caught.value.headers["Retry-After"] == "15"
    assert rl.health.refusals["rate_client"] == 2


async def test_route_groups_have_separate_buckets() -> None:
    rl = limits(default_rate="1/minute")
    await rl.check_client("c1", NOW, interaction="search-type")
    await rl.check_client("c1", NOW, interaction="read")
    await rl.check_client("c2", NOW, interaction="search-type")
    with pytest.raises(RateLimited):
        await rl.check_client("c1", NOW, interaction="search-type")


async def test_cost_over_the_whole_limit_is_refused_outright() -> None:
    rl = limits(default_rate="5/minute")
    query = [("_count", "1000")]
    with pytest.raises(CostOverLimit) as caught:
        await rl.check_client("c1", NOW, interaction="search-type", query=query)
    assert caught.value.status == 429
    assert caught.value.issue_code == "too-costly"
    assert "Retry-After" not in caught.value.headers
    assert rl.health.refusals == {"cost_over_limit": 1}
    # Nothing was charged: the whole burst is still there.
    assert await spend(rl, 5) == ["ok"] * 5


async def test_cost_over_remaining_is_refused() -> None:
    rl = limits(default_rate="5/minute")
    assert await spend(rl, 3) == ["ok"] * 3
    query = [("_include", "a"), ("_include", "b")]
    assert await spend(rl, 1, query=query) == ["rate_client"]
    assert await spend(rl, 2) == ["ok", "ok"]


async def test_daily_quota_rolls_over_at_auckland_midnight() -> None:
    rl = limits(default_rate="100/second", routes={"search": {"daily": 2}})
    zone = ZoneInfo("Pacific/Auckland")
    before = datetime(2026, 12, 5, 23, 59, 58, tzinfo=zone).timestamp()
    assert await spend(rl, 3, before) == ["ok", "ok", "quota_client"]
    with pytest.raises(RateLimited) as caught:
        await rl.check_client("c1", before + 1, interaction="search-type")
    assert caught.value.headers["Retry-After"] == "1"
    assert await spend(rl, 3, before + 2) == ["ok", "ok", "quota_client"]


async def test_monthly_rolling_quota_frees_old_days() -> None:
    settings = {"default_rate": "100/second", "quota_window": "rolling"}
    rl = limits(**settings, routes={"search": {"monthly": 2}})
    assert await spend(rl, 3) == ["ok", "ok", "quota_client"]
    assert await spend(rl, 1, NOW + 29 * 86400) == ["quota_client"]
    assert await spend(rl, 1, NOW + 30 * 86400) == ["ok"]


async def test_concurrency_cap_on_bulk_operations() -> None:
    rl = limits(routes={"bulk": {"rate": "100/second", "concurrency": 2}})
    path = "/fhir/Patient/a/$everything"
    first = await rl.check_client("c1", NOW, interaction="operation", path=path)
    await rl.check_client("c1", NOW, interaction="operation", path=path)
    with pytest.raises(RateLimited) as caught:
        await rl.check_client("c1", NOW, interaction="operation", path=path)
    assert caught.value.detail == "concurrency_client"
    await rl.release(first)
    await rl.check_client("c1", NOW, interaction="operation", path=path)


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({}, ["ratelimit"]),
        ({"disclose_policy": True}, ["ratelimit", "ratelimit-policy"]),
        ({"headers": "x-ratelimit"}, ["x-ratelimit-remaining", "x-ratelimit-reset"]),
        (
            {"headers": "x-ratelimit", "disclose_policy": True},
            ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"],
        ),
        (
            {"headers": "both"},
            ["ratelimit", "x-ratelimit-remaining", "x-ratelimit-reset"],
        ),
        ({"headers": "none"}, []),
    ],
)
async def test_header_settings(settings: dict[str, Any], names: list[str]) -> None:
    rl = limits(default_rate="10/minute", **settings)
    decision = await rl.check_client("c1", NOW, interaction="read")
    assert [name for name, _ in decision.headers] == names


async def test_headers_withhold_policy_by_default() -> None:
    rl = limits(default_rate="10/minute", routes={"read": {"daily": 1000}})
    decision = await rl.check_client("c1", NOW, interaction="read")
    assert decision.headers == (("ratelimit", '"limit";r=9;t=6'),)


async def test_headers_disclose_every_policy_when_asked() -> None:
    rl = limits(
        default_rate="10/minute",
        disclose_policy=True,
        headers="both",
        routes={"read": {"daily": 1000}},
    )
    when = datetime(2026, 12, 5, 12, 0, tzinfo=ZoneInfo("Pacific/Auckland"))
    decision = await rl.check_client("c1", when.timestamp(), interaction="read")
    headers = dict(decision.headers)
    assert headers["ratelimit"] == (
        '"client-read-rate";r=9;t=6, "client-read-daily";r=999;t=43200'
    )
    assert headers["ratelimit-policy"] == (
        '"client-read-rate";q=10;w=60, "client-read-daily";q=1000;w=86400'
    )
    assert headers["x-ratelimit-limit"] == "10"
    assert headers["x-ratelimit-reset"] == "6000"


async def test_refusal_carries_ratelimit_headers() -> None:
    rl = limits(default_rate="1/minute", headers="both")
    await rl.check_client("c1", NOW, interaction="read")
    with pytest.raises(RateLimited) as caught:
        await rl.check_client("c1", NOW, interaction="read")
    assert caught.value.headers["ratelimit"] == '"limit";r=0;t=60'
    assert caught.value.headers["x-ratelimit-remaining"] == "0"


async def test_store_down_fails_closed_with_alert(caplog: Any) -> None:
    store = FlakyStore()
    rl = limits(store, backend="redis", store_retry_seconds=1)
    store.down = True
    with caplog.at_level(logging.WARNING, "kaitiaki.limits"):
        for _ in range(3):
            with pytest.raises(LimiterUnavailable) as caught:
                await rl.check_address("203.0.113.9", NOW)
    refusal = caught.value
    assert (refusal.status, refusal.detail) == (503, "limiter_unavailable")
    assert refusal.headers == {"Retry-After": "5"}
    assert rl.health.state == "down"
    assert rl.health.unavailable_refusals == 3
    # One alert per transition, and Redis is not asked again within a second.
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1
    assert (store.calls, rl.health.store_failures) == (1, 1)


async def test_store_recovery_is_automatic(caplog: Any) -> None:
    store = FlakyStore()
    rl = limits(store, backend="redis", store_retry_seconds=1)
    store.down = True
    with pytest.raises(LimiterUnavailable):
        await rl.check_address("203.0.113.9", NOW)
    store.down = False
    with pytest.raises(LimiterUnavailable):
        await rl.check_address("203.0.113.9", NOW + 0.5)
    with caplog.at_level(logging.WARNING, "kaitiaki.limits"):
        await rl.check_address("203.0.113.9", NOW + 1)
    assert rl.health.state == "healthy"
    assert any("reachable again" in r.message for r in caplog.records)


async def test_local_mode_counts_a_fraction_of_each_limit() -> None:
    store = FlakyStore()
    rl = limits(
        store,
        backend="redis",
        default_rate="12/minute",
        on_store_failure="local",
        local_fraction=0.25,
    )
    store.down = True
    results = await spend(rl, 100)
    assert results[:3] == ["ok"] * 3
    assert set(results[3:]) == {"rate_client_local"}
    assert rl.health.state == "degraded"
    assert rl.health.local_decisions == 100
    # The local refill is slowed by the same fraction: one unit per 20 s.
    assert await spend(rl, 2, NOW + 20) == ["ok", "rate_client_local"]


async def test_dead_redis_port_fails_closed() -> None:
    rl = limits(
        backend="redis",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        store_timeout_seconds=0.5,
    )
    try:
        with pytest.raises(LimiterUnavailable):
            await rl.check_client("c1", NOW, interaction="read")
        assert rl.health.last_failure == "redis: ConnectionError"
    finally:
        await rl.close()


async def test_reload_changes_limits_and_keeps_counters() -> None:
    rl = limits(default_rate="2/minute")
    assert await spend(rl, 2) == ["ok", "ok"]
    assert await spend(rl, 1) == ["rate_client"]
    # A larger burst is usable at once; the time already spent is kept.
    rl.reload(
        LimitSettings(
            default_rate="2/minute",
            clients={"c1": "plus"},
            plans={"plus": {"*": {"rate": "2/minute", "burst": 4}}},
        )
    )
    assert await spend(rl, 3) == ["ok", "ok", "rate_client"]
    with pytest.raises(ConfigError, match=r"limits\.backend"):
        rl.reload(LimitSettings(backend="redis"))
    assert rl.settings.clients == {"c1": "plus"}


async def test_top_up_charges_the_difference() -> None:
    rl = limits(default_rate="5/minute")
    grant = await rl.check_client("c1", NOW, interaction="search-type-post")
    grant = await rl.top_up(grant, NOW, query=[("_include", "a"), ("_include", "b")])
    assert grant.cost == 3
    assert await spend(rl, 3) == ["ok", "ok", "rate_client"]


async def test_top_up_refuses_over_remaining_and_over_limit() -> None:
    rl = limits(default_rate="3/minute")
    grant = await rl.check_client("c1", NOW, interaction="search-type-post")
    with pytest.raises(CostOverLimit):
        await rl.top_up(grant, NOW, query=[("_include", str(n)) for n in range(3)])
    await rl.check_client("c1", NOW, interaction="search-type")
    with pytest.raises(RateLimited) as caught:
        await rl.top_up(grant, NOW, query=[("_include", "a"), ("_include", "b")])
    assert caught.value.detail == "rate_client"
    # One unit is still there: the refused top-up charged nothing.
    assert await spend(rl, 2) == ["ok", "rate_client"]


async def test_top_up_counts_bundle_entries() -> None:
    rl = limits(default_rate="10/minute")
    grant = await rl.check_client("c1", NOW, interaction="transaction")
    grant = await rl.top_up(grant, NOW, entries=4)
    assert grant.cost == 5
    for _ in range(5):
        await rl.check_client("c1", NOW, interaction="create")
    with pytest.raises(RateLimited):
        await rl.check_client("c1", NOW, interaction="update")


async def test_top_up_in_local_mode_stays_local() -> None:
    store = FlakyStore()
    rl = limits(
        store,
        backend="redis",
        default_rate="8/minute",
        on_store_failure="local",
        local_fraction=0.5,
    )
    store.down = True
    grant = await rl.check_client("c1", NOW, interaction="search-type-post")
    assert grant.local
    store.down = False
    grant = await rl.top_up(grant, NOW, query=[("_include", "a"), ("_include", "b")])
    assert grant.cost == 3
    assert store.calls == 1


async def test_lease_release_failure_is_logged_not_raised(caplog: Any) -> None:
    class NoRelease(MemoryStore):
        async def release(self, checks: Sequence[Check]) -> None:
            raise StoreUnavailable("redis: TimeoutError")

    rl = limits(NoRelease(), routes={"bulk": {"rate": "100/second"}})
    grant = await rl.check_client("c1", NOW, path="/fhir/Patient/a/$everything")
    assert grant.leases
    with caplog.at_level(logging.WARNING, "kaitiaki.limits"):
        await rl.release(grant)
    assert any("will expire" in record.message for record in caplog.records)
