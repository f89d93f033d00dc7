"""The development issuer binds tokens to a DPoP key when the client proves one."""

from __future__ import annotations

import base64
import json

from issuer_support import Forge, TestClient
from joserfc.jwk import ECKey
from tests.tokens.forge import dpop_proof

from kaitiaki.settings import DevIssuerSettings


def _claims(token: str) -> dict[str, object]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


def test_token_with_dpop_proof_is_bound_to_its_key(
    client: TestClient, forge: Forge, settings: DevIssuerSettings
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    proof = dpop_proof(key, "POST", f"{settings.url}/token", None)
    response = client.post("/token", data=forge.form(), headers={"DPoP": proof})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert _claims(body["access_token"])["cnf"] == {"jkt": key.thumbprint()}
    replay = client.post("/token", data=forge.form(), headers={"DPoP": proof})
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"


def test_token_with_bad_dpop_proof_is_refused(
    client: TestClient, forge: Forge, settings: DevIssuerSettings
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    for proof in (
        dpop_proof(key, "GET", f"{settings.url}/token", None),
        dpop_proof(key, "POST", "http://other.example/token", None),
        "not-a-proof",
    ):
        response = client.post("/token", data=forge.form(), headers={"DPoP": proof})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_dpop_proof"


def test_token_without_dpop_proof_stays_bearer(
    client: TestClient, forge: Forge
) -> None:
    body = client.post("/token", data=forge.form()).json()
    assert body["token_type"] == "Bearer"
    assert "cnf" not in _claims(body["access_token"])
