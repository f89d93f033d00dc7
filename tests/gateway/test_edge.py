"""Client address and scheme: the socket, or a trusted proxy's right-most hop."""

from __future__ import annotations

import pytest

from kaitiaki.gateway.edge import EdgePolicy
from kaitiaki.settings import parse_settings

TOML = """
[gateway]
upstream = "http://up/fhir"
trusted_proxies = [{proxies}]
[auth]
issuer = "https://issuer.example"
audience = "https://gw.example/fhir"
"""


def policy(*proxies: str) -> EdgePolicy:
    quoted = ", ".join(f'"{p}"' for p in proxies)
    return EdgePolicy.from_settings(
        parse_settings(TOML.format(proxies=quoted), source="t")
    )


@pytest.mark.parametrize(
    ("proxies", "peer", "headers", "expected"),
    [
        ((), "192.0.2.1", {"x-forwarded-for": ["10.0.0.1"]}, ("192.0.2.1", "http")),
        (
            ("10.0.0.0/8",),
            "192.0.2.1",
            {"x-forwarded-for": ["203.0.113.5"]},
            ("192.0.2.1", "http"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"x-forwarded-for": ["198.51.100.1, 203.0.113.5"]},
            ("203.0.113.5", "http"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"x-forwarded-for": ["198.51.100.1", "203.0.113.5, 10.2.2.2"]},
            ("203.0.113.5", "http"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"x-forwarded-for": ["203.0.113.5"], "x-forwarded-proto": ["https"]},
            ("203.0.113.5", "https"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"x-forwarded-for": ["203.0.113.5"], "x-forwarded-proto": ["gopher"]},
            ("203.0.113.5", "http"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"forwarded": ['for=198.51.100.1, for="[2001:db8::17]:4711";proto=https']},
            ("2001:db8::17", "https"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"forwarded": ['for="192.0.2.60:8080";proto=http;by=10.1.1.1']},
            ("192.0.2.60", "http"),
        ),
        (
            ("10.0.0.0/8",),
            "10.1.1.1",
            {"x-forwarded-for": ["203.0.113.5, not-an-address"]},
            ("10.1.1.1", "http"),
        ),
        (
            ("10.0.0.0/8", "2001:db8::/32"),
            "2001:db8::1",
            {"x-forwarded-for": ["203.0.113.5, 10.9.9.9"]},
            ("203.0.113.5", "http"),
        ),
        (("10.0.0.0/8",), "10.1.1.1", {}, ("10.1.1.1", "http")),
    ],
)
def test_client_origin_takes_the_right_most_untrusted_hop(
    proxies: tuple[str, ...],
    peer: str,
    headers: dict[str, list[str]],
    expected: tuple[str, str],
) -> None:
    assert policy(*proxies).client_origin(peer, "http", headers) == expected


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(Exception, match="CIDR"):
        policy("not-a-network")
