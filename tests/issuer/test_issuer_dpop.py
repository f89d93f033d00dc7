"""The development issuer binds tokens to a DPoP key when the client proves one."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
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


def test_cli_dpop_proof_verifies_for_its_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from kaitiaki.cli import main
    from kaitiaki.settings import DpopSettings as Dpop
    from kaitiaki.tokens.dpop import verify_proof

    key_path = tmp_path / "keys" / "dpop.jwk"
    url = "http://127.0.0.1:8080/fhir/Patient"
    args = ["dpop-proof", "--key", str(key_path), "--url", url, "--token", "abc.d.e"]
    assert main(args) == 0
    proof = capsys.readouterr().out.strip()
    assert key_path.stat().st_mode & 0o077 == 0
    checked = verify_proof(
        proof,
        Dpop(),
        method="GET",
        url=url,
        access_token="abc.d.e",
        now=int(time.time()),
        leeway=30,
    )
    assert main(args) == 0  # the same key, loaded this time
    again = capsys.readouterr().out.strip()
    assert again != proof
    assert (
        checked.jkt
        == verify_proof(
            again,
            Dpop(),
            method="GET",
            url=url,
            access_token="abc.d.e",
            now=int(time.time()),
            leeway=30,
        ).jkt
    )
