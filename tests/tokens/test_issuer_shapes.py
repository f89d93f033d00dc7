"""Tokens shaped like those of Keycloak and Entra ID, handled as documented in
docs/configuration.md: RS256 only with ``allow_rs256``, ``typ`` other than
``at+jwt`` only with ``require_at_jwt_typ = false``."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from kaitiaki.errors import InvalidToken
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.jwt import verify_access_token
from kaitiaki.tokens.keys import VerificationKey, import_public_key

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.health.nz/realms/hnz-integration"
NOW = int(time.time())
KEY = RSAKey.generate_key(2048, auto_kid=True)


class Keys:
    def __init__(self, key: VerificationKey | None) -> None:
        self.key = key

    async def get(self, kid: str) -> VerificationKey | None:
        return self.key if kid == KEY.kid else None


def _keycloak_claims() -> dict[str, Any]:
    return {
        "exp": NOW + 300,
        "iat": NOW,
        "jti": "onrtac:6f1b1d2e",
        "iss": ISSUER,
        "aud": ["fhir-gateway", "account"],
        "sub": "5f0c2c3e-1111-4a2b-9c7d-000000000001",
        "typ": "Bearer",
        "azp": "pms-client",
        "realm_access": {"roles": ["offline_access", "uma_authorization"]},
        "resource_access": {"account": {"roles": ["view-profile"]}},
        "scope": "system/Patient.rs system/Observation.rs",
        "clientHost": "10.0.0.1",
    }


def _token(claims: dict[str, Any], typ: str | None = "JWT", alg: str = "RS256") -> str:
    header: dict[str, Any] = {"alg": alg, "kid": KEY.kid}
    if typ is not None:
        header["typ"] = typ
    return jwt.encode(header, claims, KEY, algorithms=[alg])


def _settings(**changes: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": "fhir-gateway",
        "algorithms": ("RS256", "PS256", "ES256"),
        "allow_rs256": True,
        "require_at_jwt_typ": False,
    }
    values.update(changes)
    return AuthSettings(**values)


def _keys() -> Keys:
    return Keys(import_public_key(KEY.as_dict(private=False)))


@pytest.mark.parametrize("typ", ["JWT", "Bearer", "at+jwt"])
async def test_keycloak_token_is_accepted_in_compatibility_mode(typ: str) -> None:
    principal = await verify_access_token(
        _token(_keycloak_claims(), typ), _settings(), _keys(), NOW
    )
    assert principal.client_id == "pms-client"  # from azp
    assert principal.scope == "system/Patient.rs system/Observation.rs"
    assert principal.claims["realm_access"] == {
        "roles": ["offline_access", "uma_authorization"]
    }


@pytest.mark.parametrize(
    ("settings", "typ", "reason"),
    [
        ({"allow_rs256": False}, "JWT", "alg_not_allowed"),
        ({"require_at_jwt_typ": True}, "JWT", "typ_not_at_jwt"),
        ({"require_at_jwt_typ": True}, None, "typ_not_at_jwt"),
        ({}, "dpop+jwt", "typ_not_at_jwt"),
        ({}, "logout+jwt", "typ_not_at_jwt"),
        ({"audience": "other-api"}, "JWT", "aud_mismatch"),
    ],
)
async def test_keycloak_token_refused_outside_documented_settings(
    settings: dict[str, Any], typ: str | None, reason: str
) -> None:
    with pytest.raises(InvalidToken) as refused:
        await verify_access_token(
            _token(_keycloak_claims(), typ), _settings(**settings), _keys(), NOW
        )
    assert refused.value.detail == reason


async def test_keycloak_token_without_typ_header_is_accepted_when_lenient() -> None:
    principal = await verify_access_token(
        _token(_keycloak_claims(), None), _settings(), _keys(), NOW
    )
    assert principal.subject.startswith("5f0c2c3e")


async def test_entra_id_shaped_token_reads_scp() -> None:
    issuer = (
        "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"
    )
    claims = {
        "iss": issuer,
        "aud": "api://kaitiaki-fhir",
        "azp": "11111111-2222-3333-4444-555555555555",
        "sub": "entra-subject",
        "scp": "user/Patient.rs",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 3000,
        "ver": "2.0",
    }
    settings = _settings(issuer=issuer, audience="api://kaitiaki-fhir")
    principal = await verify_access_token(_token(claims), settings, _keys(), NOW)
    assert principal.scope == "user/Patient.rs"
    assert principal.client_id == "11111111-2222-3333-4444-555555555555"


ENTRA = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"


def _entra_app_token(roles: Any) -> str:
    """An Entra ID client-credentials token: application permissions in
    ``roles``, no ``scp``."""
    claims = {
        "iss": ENTRA,
        "aud": "api://kaitiaki-fhir",
        "azp": "11111111-2222-3333-4444-555555555555",
        "sub": "11111111-2222-3333-4444-555555555555",
        "roles": roles,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 3000,
        "ver": "2.0",
    }
    return _token(claims)


async def test_entra_id_application_roles_map_to_the_scopes_named() -> None:
    mapping = {"Fhir.Read.All": "system/*.rs", "Fhir.Audit": "system/AuditEvent.r"}
    settings = _settings(
        issuer=ENTRA, audience="api://kaitiaki-fhir", role_scopes=mapping
    )
    token = _entra_app_token(["Fhir.Read.All", "Unmapped.Role", "Fhir.Audit"])
    principal = await verify_access_token(token, settings, _keys(), NOW)
    assert principal.scope == "system/*.rs system/AuditEvent.r"


async def test_entra_id_roles_never_widen_a_users_delegated_scopes() -> None:
    """Entra ID also lists app roles assigned to a user in that user's token:
    they must not add the application's scopes to the user's ``scp``."""
    settings = _settings(
        issuer=ENTRA,
        audience="api://kaitiaki-fhir",
        role_scopes={"Fhir.Read.All": "system/*.rs"},
    )
    claims = {
        "iss": ENTRA,
        "aud": "api://kaitiaki-fhir",
        "azp": "11111111-2222-3333-4444-555555555555",
        "sub": "a-user",
        "scp": "user/Patient.rs",
        "roles": ["Fhir.Read.All"],
        "iat": NOW,
        "exp": NOW + 3000,
    }
    principal = await verify_access_token(_token(claims), settings, _keys(), NOW)
    assert principal.scope == "user/Patient.rs"


async def test_entra_id_roles_grant_nothing_without_a_mapping() -> None:
    settings = _settings(issuer=ENTRA, audience="api://kaitiaki-fhir")
    token = _entra_app_token(["Fhir.Read.All"])
    principal = await verify_access_token(token, settings, _keys(), NOW)
    assert principal.scope == ""


async def test_entra_id_malformed_roles_are_refused() -> None:
    settings = _settings(
        issuer=ENTRA,
        audience="api://kaitiaki-fhir",
        role_scopes={"Fhir.Read.All": "system/*.rs"},
    )
    with pytest.raises(InvalidToken) as refused:
        await verify_access_token(
            _entra_app_token("Fhir.Read.All"), settings, _keys(), NOW
        )
    assert refused.value.detail == "roles_invalid"


@pytest.mark.parametrize("scopes", ["", "system/*.rs\nx", "a  b"])
def test_role_scopes_must_be_scope_lists(scopes: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        AuthSettings(issuer=ENTRA, audience="a", role_scopes={"R": scopes})


def test_compatibility_settings_are_named_at_start_up() -> None:
    from kaitiaki.tokens.services import weaker_modes

    assert weaker_modes(AuthSettings(issuer=ISSUER, audience="a")) == []
    named = weaker_modes(_settings())
    assert any("allow_rs256" in mode for mode in named)
    assert any("require_at_jwt_typ" in mode for mode in named)
