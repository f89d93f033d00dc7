"""Interoperability with an issuer nobody here wrote: panva's oidc-provider.

Its JWT access tokens (resource indicators) verify, a tampered one does not,
its opaque tokens verify through introspection (the gateway authenticating
with private_key_jwt) until revoked, and its DPoP-bound tokens are honoured
only with a proof."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from joserfc.jwk import ECKey

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import Recorder, gateway_toml, upstream_app
from tests.interop.conftest import RESOURCE, OidcProvider
from tests.tokens.forge import dpop_proof

FHIR = {"Accept": "application/fhir+json"}


@dataclass
class Deployed:
    client: httpx.Client
    recorder: Recorder


@pytest.fixture(scope="module")
def deployed(
    oidc_provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("interop")
    key_path = tmp / "gateway.jwk"
    key_path.write_text(json.dumps(oidc_provider.gateway.key.as_dict(private=True)))
    key_path.chmod(0o600)
    extra = f"""
[auth.introspection]
client_id = "{oidc_provider.gateway.client_id}"
auth_method = "private_key_jwt"
private_key_path = "{key_path}"
cache_seconds = 0
"""
    recorder = Recorder()
    with ThreadServer(upstream_app(recorder)) as upstream:
        toml = gateway_toml(oidc_provider.issuer, upstream.url, tmp, extra)
        settings = parse_settings(toml, source="test")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield Deployed(client, recorder)


def _get(deployed: Deployed, authorization: str, **headers: str) -> httpx.Response:
    return deployed.client.get(
        "/fhir/Patient", headers={**FHIR, "Authorization": authorization, **headers}
    )


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "==")))


def test_oidc_provider_jwt_access_token_is_accepted(
    oidc_provider: OidcProvider, deployed: Deployed
) -> None:
    answer = oidc_provider.token(oidc_provider.app)
    token = answer["access_token"]
    assert token.count(".") == 2
    assert _claims(token)["aud"] == RESOURCE
    before = len(deployed.recorder.requests)
    assert _get(deployed, f"Bearer {token}").status_code == 200
    assert len(deployed.recorder.requests) == before + 1
    sent = deployed.recorder.requests[-1]["headers"]
    assert sent["kaitiaki-client-id"] == "kaitiaki-app"


def test_oidc_provider_tampered_token_is_refused(
    oidc_provider: OidcProvider, deployed: Deployed
) -> None:
    token = oidc_provider.token(oidc_provider.app)["access_token"]
    head, _, signature = token.split(".")
    claims = _claims(token)
    claims["scope"] = "system/*.cruds"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    before = len(deployed.recorder.requests)
    response = _get(deployed, f"Bearer {head}.{forged.decode()}.{signature}")
    assert response.status_code == 401
    assert len(deployed.recorder.requests) == before


def test_oidc_provider_opaque_token_is_introspected_until_revoked(
    oidc_provider: OidcProvider, deployed: Deployed
) -> None:
    token = oidc_provider.token(oidc_provider.opaque_app)["access_token"]
    assert "." not in token
    before = len(deployed.recorder.requests)
    assert _get(deployed, f"Bearer {token}").status_code == 200
    assert deployed.recorder.requests[-1]["headers"]["kaitiaki-client-id"] == (
        "kaitiaki-opaque-app"
    )
    oidc_provider.revoke(oidc_provider.opaque_app, token)
    assert _get(deployed, f"Bearer {token}").status_code == 401
    assert _get(deployed, "Bearer not-a-token-it-knows").status_code == 401
    assert len(deployed.recorder.requests) == before + 1


def test_oidc_provider_dpop_bound_token_needs_its_proof(
    oidc_provider: OidcProvider, deployed: Deployed
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    endpoint = oidc_provider.metadata["token_endpoint"]
    answer = oidc_provider.token(
        oidc_provider.app, dpop=dpop_proof(key, "POST", endpoint, None)
    )
    assert answer["token_type"] == "DPoP"
    token = answer["access_token"]
    assert _claims(token)["cnf"] == {"jkt": key.thumbprint()}
    url = "https://gw.example/fhir/Patient"
    before = len(deployed.recorder.requests)
    proof = dpop_proof(key, "GET", url, token)
    assert _get(deployed, f"DPoP {token}", DPoP=proof).status_code == 200
    assert _get(deployed, f"DPoP {token}", DPoP=proof).status_code == 401  # replay
    assert _get(deployed, f"Bearer {token}").status_code == 401
    other = dpop_proof(ECKey.generate_key("P-256"), "GET", url, token)
    assert _get(deployed, f"DPoP {token}", DPoP=other).status_code == 401
    assert len(deployed.recorder.requests) == before + 1


def test_oidc_provider_dpop_bound_opaque_token_needs_its_proof(
    oidc_provider: OidcProvider, deployed: Deployed
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    endpoint = oidc_provider.metadata["token_endpoint"]
    answer = oidc_provider.token(
        oidc_provider.opaque_app, dpop=dpop_proof(key, "POST", endpoint, None)
    )
    token = answer["access_token"]
    url = "https://gw.example/fhir/Patient"
    before = len(deployed.recorder.requests)
    assert _get(deployed, f"Bearer {token}").status_code == 401
    proof = dpop_proof(key, "GET", url, token)
    assert _get(deployed, f"DPoP {token}", DPoP=proof).status_code == 200
    assert len(deployed.recorder.requests) == before + 1
