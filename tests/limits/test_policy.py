"""Which checks a request gets: keys, layering of route defaults and plans."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kaitiaki.limits.config import LimitSettings
from kaitiaki.limits.policy import Policy, address_key

NOW = 1_800_000_000.0


def policy(**settings: Any) -> Policy:
    return Policy(LimitSettings.model_validate(settings))


def summary(policy: Policy, group: str = "search", **who: Any) -> list[tuple]:
    checks = policy.request_checks(
        group,  # type: ignore[arg-type]
        1,
        NOW,
        client_id=who.pop("client_id", "c1"),
        lease="l1",
        **who,
    )
    return [(c.kind, c.policy, c.limit, round(c.interval, 6)) for c in checks]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", "unknown"),
    ],
)
def test_address_key_groups_ipv6_by_prefix(address: str, key: str) -> None:
    assert address_key(address, 64) == key


def test_address_checks_count_an_ipv6_prefix_as_one_key_every_time() -> None:
    # The second and later lookups come from the memo: the same keys.
    counted = policy(ipv6_prefix=48)
    for _ in range(3):
        first = counted.address_checks("2001:db8:1:2::1", NOW)
        second = counted.address_checks("2001:db8:1:ffff::2", NOW)
        other = counted.address_checks("2001:db8:2::1", NOW)
        assert [c.key for c in first] == [c.key for c in second]
        assert [c.key for c in first] != [c.key for c in other]


def test_default_client_rate_applies_to_every_group() -> None:
    found = summary(policy(default_rate="120/minute"), "read")
    assert found == [("rate", "client-read-rate", 120, 0.5)]


def test_route_default_then_plan_layers() -> None:
    settings = {
        "default_rate": "120/minute",
        "routes": {"search": {"rate": "10/second", "burst": 30, "daily": 1000}},
        "plans": {
            "bronze": {"*": {"rate": "1/second", "burst": 5}, "search": {"daily": 50}}
        },
        "clients": {"nightly": "bronze", "legacy": "3/minute"},
    }
    found = policy(**settings)
    assert summary(found) == [
        ("rate", "client-search-rate", 30, 0.1),
        ("quota", "client-search-daily", 1000, 86400.0),
    ]
    assert summary(found, client_id="nightly") == [
        ("rate", "client-search-rate", 5, 1.0),
        ("quota", "client-search-daily", 50, 86400.0),
    ]
    assert summary(found, client_id="legacy") == [
        ("rate", "client-search-rate", 3, 20.0),
        ("quota", "client-search-daily", 1000, 86400.0),
    ]
    assert summary(found, "read", client_id="nightly") == [
        ("rate", "client-read-rate", 5, 1.0)
    ]


def test_bulk_group_gets_a_concurrency_cap_by_default() -> None:
    kinds = [kind for kind, *_ in summary(policy(), "bulk")]
    assert kinds == ["rate", "concurrency"]


def test_subject_and_organisation_are_separate_keys() -> None:
    found = policy(
        subject={"*": {"rate": "30/minute"}},
        organisation={"search": {"monthly": 100000}},
        organisations={"G00001-G": "5/second"},
    )
    checks = summary(found, subject="user-1", organisation="G00002-G")
    assert [c[1] for c in checks] == [
        "client-search-rate",
        "subject-search-rate",
        "organisation-search-monthly",
    ]
    special = summary(found, subject="user-1", organisation="G00001-G")
    assert special[-2:] == [
        ("rate", "organisation-search-rate", 5, 0.2),
        ("quota", "organisation-search-monthly", 100000, special[-1][3]),
    ]


def test_subject_equal_to_client_is_not_counted_twice() -> None:
    found = policy(subject={"*": {"rate": "30/minute"}})
    assert len(summary(found, client_id="svc", subject="svc")) == 1


def test_keys_separate_client_group_and_window() -> None:
    found = policy(routes={"search": {"daily": 10}})
    one = found.request_checks("search", 1, NOW, client_id="a")
    other = found.request_checks("read", 1, NOW, client_id="a")
    tomorrow = found.request_checks("search", 1, NOW + 86400, client_id="a")
    keys = {check.key for check in one + other + tomorrow}
    # Two rates (search, read) and two daily windows of search.
    assert len(keys) == 4
    assert one[0].key == tomorrow[0].key
    assert one[1].key != tomorrow[1].key


def test_rolling_quota_uses_slices() -> None:
    found = policy(quota_window="rolling", routes={"search": {"monthly": 10}})
    check = found.request_checks("search", 1, NOW, client_id="a")[-1]
    assert (check.kind, check.slices, check.interval) == ("rolling", 30, 86400.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clients": {"a": "platinum"}}, "neither a rate"),
        ({"timezone": "Middle/Earth"}, "IANA zone"),
        ({"routes": {"everything": {"rate": "1/second"}}}, "routes.everything"),
        ({"routes": {"read": {"rate": "lots"}}}, "pattern"),
        ({"on_store_failure": "open"}, "on_store_failure"),
        ({"local_fraction": 0}, "local_fraction"),
    ],
)
def test_bad_settings_name_the_setting(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LimitSettings.model_validate(settings)
