"""Discovery, JWKS and issued access tokens of the development issuer."""

from __future__ import annotations

import time

from issuer_support import AUDIENCE, Forge, TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from kaitiaki.settings import DevIssuerSettings

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def test_discovery_metadata_fields(
    client: TestClient, settings: DevIssuerSettings
) -> None:
    for path in (
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ):
        metadata = client.get(path).json()

        assert metadata["issuer"] == "http://127.0.0.1:8090"
        assert metadata["jwks_uri"] == f"{settings.url}/jwks"
        assert metadata["token_endpoint"] == f"{settings.url}/token"
        assert metadata["introspection_endpoint"] == f"{settings.url}/introspect"
        assert metadata["grant_types_supported"] == ["client_credentials"]
        assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert metadata["token_endpoint_auth_signing_alg_values_supported"] == [
            "ES256",
            "ES384",
            "EdDSA",
            "PS256",
        ]
        assert metadata["response_types_supported"] == ["token"]
        assert metadata["subject_types_supported"] == ["public"]
        assert metadata["id_token_signing_alg_values_supported"] == ["ES256"]
        assert metadata["scopes_supported"] == ["system/*.cruds", "system/*.rs"]
        assert metadata["code_challenge_methods_supported"] == ["S256"]


def test_jwks_has_no_private_members(client: TestClient) -> None:
    response = client.get("/jwks")

    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert not PRIVATE_MEMBERS & set(keys[0])
    assert keys[0]["kty"] == "EC" and keys[0]["kid"]


def test_token_demo_system_has_rfc9068_claims(
    client: TestClient, forge: Forge, settings: DevIssuerSettings
) -> None:
    before = int(time.time())
    response = client.post("/token", data=forge.form())

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "system/*.rs"
    assert 0 < body["expires_in"] <= 600

    jwks = KeySet.import_key_set(client.get("/jwks").json())
    token = jwt.decode(body["access_token"], jwks, algorithms=["ES256"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "ES256"
    assert token.header["kid"] == jwks.keys[0].kid
    claims = token.claims
    assert claims["iss"] == settings.url
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["client_id"] == "demo-system"
    assert claims["scope"] == "system/*.rs"
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == settings.token_lifetime_seconds <= 600


def test_token_jti_differs_per_token(client: TestClient, forge: Forge) -> None:
    tokens = [
        client.post("/token", data=forge.form()).json()["access_token"] for _ in "ab"
    ]

    jtis = {
        jwt.decode(t, KeySet.import_key_set(client.get("/jwks").json())).claims["jti"]
        for t in tokens
    }
    assert len(jtis) == 2


def test_token_requested_subset_scope_granted(client: TestClient, forge: Forge) -> None:
    form = forge.form(forge.assertion("demo-writer"), scope="system/*.cruds")

    response = client.post("/token", data=form)

    assert response.status_code == 200
    assert response.json()["scope"] == "system/*.cruds"


def test_token_issuer_url_accepted_as_assertion_audience(
    client: TestClient, forge: Forge, settings: DevIssuerSettings
) -> None:
    form = forge.form(forge.assertion(aud=[settings.url]), client_id="demo-system")

    assert client.post("/token", data=form).status_code == 200


def test_introspect_issued_token_active(client: TestClient, forge: Forge) -> None:
    access_token = client.post("/token", data=forge.form()).json()["access_token"]
    form = {**forge.form(forge.assertion("demo-writer")), "token": access_token}
    del form["grant_type"]

    response = client.post("/introspect", data=form)

    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == "demo-system"
    assert body["scope"] == "system/*.rs"


def test_introspect_foreign_token_inactive(client: TestClient, forge: Forge) -> None:
    form = {**forge.form(), "token": forge.assertion()}

    response = client.post("/introspect", data=form)

    assert response.json() == {"active": False}


def test_introspect_without_client_auth_refused(client: TestClient) -> None:
    response = client.post("/introspect", data={"token": "x"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
