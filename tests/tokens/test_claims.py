"""Registered-claim rules, table by table: times, audience, confirmation."""

from __future__ import annotations

from typing import Any

import pytest

from kaitiaki.errors import ExpiredToken, InvalidToken
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.jwt import check_claims

NOW = 1_800_000_000
SETTINGS = AuthSettings(issuer="https://as.example", audience="https://api.example")


def _claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "https://as.example",
        "aud": "https://api.example",
        "sub": "s",
        "client_id": "c",
        "iat": NOW,
        "exp": NOW + 300,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not ...}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"exp": NOW - 29},  # within the 30 s leeway
        {"nbf": NOW + 29},
        {"iat": NOW + 29, "exp": NOW + 600},
        {"aud": ["other", "https://api.example"]},
        {"exp": NOW + 3600},
        {"scope": ["a", "b"]},
        {"cnf": {"jkt": "abc"}},
    ],
)
def test_claims_accepted(changes: dict[str, Any]) -> None:
    check_claims(_claims(**changes), SETTINGS, NOW)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": NOW - 30}, "expired"),
        ({"exp": ...}, "exp_missing"),
        ({"exp": "1800000300"}, "exp_invalid"),
        ({"exp": 1e13}, "exp_invalid"),
        ({"nbf": NOW + 31}, "not_yet_valid"),
        ({"nbf": "soon"}, "nbf_invalid"),
        ({"iat": NOW + 31}, "issued_in_future"),
        ({"iat": None}, "iat_invalid"),
        ({"iat": ...}, "iat_missing"),
        ({"exp": NOW + 3601}, "lifetime_too_long"),
        ({"aud": ...}, "aud_mismatch"),
        ({"aud": {"a": 1}}, "aud_mismatch"),
        ({"iss": "https://as.example/"}, "iss_mismatch"),
        ({"client_id": ..., "sub": ...}, "client_missing"),
        ({"client_id": ""}, "client_invalid"),
        ({"scope": 5}, "scope_invalid"),
        ({"cnf": {}}, "cnf_unsupported"),
        ({"cnf": {"x5t": "sha1"}}, "cnf_unsupported"),
        ({"cnf": {"jkt": 1}}, "cnf_invalid"),
        ({"cnf": "jkt"}, "cnf_unsupported"),
    ],
)
def test_claims_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidToken) as refused:
        check_claims(_claims(**changes), SETTINGS, NOW)
    assert refused.value.detail == reason
    if reason == "expired":
        assert isinstance(refused.value, ExpiredToken)


def test_claims_iat_optional_when_not_strict() -> None:
    lenient = SETTINGS.model_copy(update={"require_at_jwt_typ": False})
    check_claims(_claims(iat=...), lenient, NOW)
    check_claims(_claims(iat=..., nbf=NOW - 100, exp=NOW + 3400), lenient, NOW)
    with pytest.raises(InvalidToken):  # the lifetime then counts from nbf
        check_claims(_claims(iat=..., nbf=NOW - 100, exp=NOW + 3600), lenient, NOW)
