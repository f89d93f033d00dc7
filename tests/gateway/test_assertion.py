"""The gateway's signed assertion, and an upstream that refuses traffic
that bypassed the gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kaitiaki.errors import ConfigError, Forbidden
from kaitiaki.gateway.assertion import AssertionSigner, AssertionVerifier
from kaitiaki.issuer.keys import generate_signing_key, write_private_key
from kaitiaki.refapi import create_app
from kaitiaki.settings import RefApiSettings
from tests.gateway.conftest import StandIn
from tests.gateway.zero_trust_support import gateway_with

NOW = 1_800_000_000


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "gateway.jwk"
    write_private_key(path, generate_signing_key())
    return path


def signer(key_file: Path, lifetime: int = 30) -> AssertionSigner:
    return AssertionSigner(
        str(key_file), issuer="gw-1", audience="refapi", lifetime=lifetime
    )


def test_assertion_is_short_lived_and_single_use(key_file: Path) -> None:
    token = signer(key_file).sign(NOW, "svc")
    verifier = AssertionVerifier.from_file(str(key_file), audience="refapi")
    claims = verifier.verify(token, NOW + 1)
    assert claims["exp"] - claims["iat"] <= 60
    assert claims["sub"] == "svc" and claims["jti"]
    with pytest.raises(Forbidden):
        verifier.verify(token, NOW + 2)
    with pytest.raises(Forbidden):
        verifier.verify(signer(key_file).sign(NOW, None), NOW + 100)
    other = AssertionVerifier.from_file(str(key_file), audience="elsewhere")
    with pytest.raises(Forbidden):
        other.verify(signer(key_file).sign(NOW, None), NOW)
    for garbage in (None, "", "a.b.c", "x" * 5000):
        with pytest.raises(Forbidden):
            verifier.verify(garbage, NOW)


def test_assertion_key_must_be_owner_only(key_file: Path) -> None:
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        signer(key_file)
    key_file.chmod(0o600)
    with pytest.raises(ConfigError):
        signer(key_file, lifetime=120)


def test_gateway_sends_a_verifiable_assertion(
    standin: StandIn, tmp_path: Path, key_file: Path
) -> None:
    auth = {"assertion_key": str(key_file), "assertion_audience": "refapi"}
    with gateway_with(standin, tmp_path, upstream_auth=auth) as gw:
        gw.client.get(
            "/fhir/Patient", headers={"Authorization": f"Bearer {standin.token()}"}
        )
        gw.client.get("/fhir/metadata")
        verifier = AssertionVerifier.from_file(str(key_file), audience="refapi")
        first, second = (
            r["headers"]["kaitiaki-gateway-assertion"] for r in gw.recorder.requests
        )
        assert verifier.verify(first, int(time.time()))["sub"] == "svc"
        assert "sub" not in verifier.verify(second, int(time.time()))


def test_refapi_refuses_traffic_without_the_assertion(
    tmp_path: Path, key_file: Path
) -> None:
    public = tmp_path / "gateway.pub.json"
    key = json.loads(key_file.read_text())
    public.write_text(json.dumps({k: v for k, v in key.items() if k != "d"}))
    settings = RefApiSettings(
        database_url=f"sqlite:///{tmp_path / 'ref.sqlite'}",
        gateway_assertion_key=str(public),
        gateway_assertion_audience="refapi",
    )
    with TestClient(create_app(settings)) as client:
        bypass = client.get("/fhir/metadata")
        assert bypass.status_code == 403
        assert bypass.json()["issue"][0]["code"] == "forbidden"
        token = signer(key_file).sign(int(time.time()), None)
        through = client.get(
            "/fhir/metadata", headers={"kaitiaki-gateway-assertion": token}
        )
        assert through.status_code == 200
        replay = client.get(
            "/fhir/metadata", headers={"kaitiaki-gateway-assertion": token}
        )
        assert replay.status_code == 403
