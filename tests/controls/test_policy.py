"""Route policies: first match wins, unset fields fall back; settings checks."""

from __future__ import annotations

import pytest

from kaitiaki.controls.policy import effective_policy
from kaitiaki.errors import ConfigError
from kaitiaki.fhir.interactions import match_interaction
from kaitiaki.settings import AuthoriseSettings, RoutePolicy, parse_settings

SETTINGS = AuthoriseSettings(
    routes=(
        RoutePolicy(
            name="writes",
            interactions=("create", "update"),
            client_credentials="forbid",
        ),
        RoutePolicy(
            name="consent",
            resource_types=("Consent",),
            required_scopes=("consent-admin",),
            min_acr="2",
        ),
        RoutePolicy(
            name="bundles", interactions=("batch",), request_context="required"
        ),
    )
)


@pytest.mark.parametrize(
    ("method", "path", "name", "grant", "acr", "context", "scopes"),
    [
        ("POST", "/Consent", "writes", "forbid", "3", "optional", ()),
        (
            "GET",
            "/Consent",
            "consent",
            "with_request_context",
            "2",
            "optional",
            ("consent-admin",),
        ),
        ("POST", "/", "bundles", "with_request_context", "3", "required", ()),
        ("GET", "/Patient", "default", "with_request_context", "3", "optional", ()),
    ],
)
def test_effective_policy_first_match_wins(
    method: str,
    path: str,
    name: str,
    grant: str,
    acr: str,
    context: str,
    scopes: tuple[str, ...],
) -> None:
    policy = effective_policy(SETTINGS, match_interaction(method, path))
    assert (policy.name, policy.client_credentials, policy.min_acr) == (
        name,
        grant,
        acr,
    )
    assert (policy.request_context, policy.required_scopes) == (context, scopes)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            '[[authorise.routes]]\nname = "x"\ninteractions = ["creat"]',
            "unknown interactions",
        ),
        ('[authorise]\nmin_acr = "4"', "not in acr_levels"),
        ('[authorise]\nclient_credentials = "sometimes"', "client_credentials"),
        ("[authorise.context]\nmax_bytes = 10", "max_bytes"),
    ],
)
def test_authorise_settings_refuse_mistakes(section: str, message: str) -> None:
    text = f"""
[gateway]
upstream = "http://127.0.0.1:1/fhir"
[auth]
issuer = "https://issuer.example"
audience = "a"
{section}
"""
    with pytest.raises(ConfigError, match=message):
        parse_settings(text, source="test")


def test_example_settings_parse() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs/kaitiaki.example.toml").read_text()
    settings = parse_settings(text, source="example")
    assert settings.authorise.routes[0].client_credentials == "forbid"
    assert settings.gateway.public_paths == ("/metadata", "/.well-known/*")
