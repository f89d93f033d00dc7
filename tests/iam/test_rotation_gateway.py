"""Issuer key rotation seen from the gateway: old and new tokens both verify."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from kaitiaki.gateway.app import Gateway
from kaitiaki.issuer import create_app
from kaitiaki.issuer.state import load_state, signing_key_ring
from kaitiaki.issuer.tokens import access_token_claims, sign_access_token
from kaitiaki.settings import DevIssuerSettings, parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import Recorder, gateway_toml, upstream_app

AUDIENCE = "https://gw.example/fhir"


def _token(issuer: DevIssuerSettings) -> str:
    claims = access_token_claims(
        issuer=issuer.url,
        audience=AUDIENCE,
        client_id="svc",
        scopes=["system/*.rs"],
        now=int(time.time()),
        lifetime=300,
        jti=uuid.uuid4().hex,
    )
    return sign_access_token(load_state(issuer).signing_key, claims)


def test_rotation_old_and_new_issuer_keys_verify_at_gateway(tmp_path: Path) -> None:
    issuer = DevIssuerSettings(
        port=free_port(), state_dir=str(tmp_path / "issuer"), audience=AUDIENCE
    )
    offset = [0.0]
    recorder = Recorder()
    with (
        ThreadServer(create_app(issuer), issuer.port),
        ThreadServer(upstream_app(recorder)) as upstream,
    ):
        text = gateway_toml(issuer.url, upstream.url, tmp_path).replace(
            'algorithms = ["ES256"]',
            'algorithms = ["ES256"]\njwks_min_refresh_seconds = 1',
        )
        gateway = Gateway(
            parse_settings(text, source="t"), clock=lambda: time.time() + offset[0]
        )
        with (
            ThreadServer(gateway) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            old = _token(issuer)

            def status(token: str) -> int:
                headers = {"authorization": f"Bearer {token}"}
                return client.get("/fhir/Patient", headers=headers).status_code

            assert status(old) == 200
            rotation = signing_key_ring(issuer).rotate(int(time.time()), 600)
            new = _token(issuer)
            offset[0] = 5.0  # past the JWKS refetch cool-down

            assert status(new) == 200
            assert status(old) == 200
            assert rotation.retired_kid in {
                key["kid"] for key in load_state(issuer).public_jwks["keys"]
            }
    assert len(recorder.requests) == 3
