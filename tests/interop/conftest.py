"""panva's oidc-provider on a loopback port, installed by npm into an ignored
folder (``.artefacts/``) at a pinned version and reused by later runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.conftest import backends_required, free_port

OIDC_PROVIDER_VERSION = "9.13.3"
ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".artefacts" / f"oidc-provider-{OIDC_PROVIDER_VERSION}"
RESOURCE = "https://gw.example/fhir"
SCOPES = ["system/Patient.rs", "system/Observation.rs"]


def _unavailable(reason: str) -> None:
    if backends_required():
        pytest.fail(reason)
    pytest.skip(reason)


def install_oidc_provider() -> Path:
    """Install the pinned oidc-provider once, with ``npm ci`` from our lock
    (every package checked against its integrity hash); later runs find it."""
    here = Path(__file__).parent
    lock = (here / "package-lock.json").read_text()
    package = INSTALL_DIR / "node_modules" / "oidc-provider" / "package.json"
    installed_lock = INSTALL_DIR / "package-lock.json"
    if (
        package.is_file()
        and installed_lock.is_file()
        and installed_lock.read_text() == lock
        and json.loads(package.read_text())["version"] == OIDC_PROVIDER_VERSION
    ):
        return INSTALL_DIR
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _unavailable("Node.js and npm are needed for the oidc-provider tests")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(here / "package.json", INSTALL_DIR / "package.json")
    shutil.copyfile(here / "package-lock.json", installed_lock)
    result = subprocess.run(
        [
            str(npm),
            "ci",
            "--prefix",
            str(INSTALL_DIR),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        _unavailable(f"npm ci for oidc-provider failed: {result.stderr[-500:]}")
    return INSTALL_DIR


@dataclass
class Client:
    client_id: str
    key: ECKey

    def registration(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [self.key.as_dict(private=False)]},
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "scope": " ".join(SCOPES),
            "id_token_signed_response_alg": "ES256",
        }

    def assertion(self, issuer: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": issuer,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 60,
        }
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key)


@dataclass
class OidcProvider:
    issuer: str
    app: Client
    opaque_app: Client
    gateway: Client
    metadata: dict[str, Any]

    def token(self, client: Client, dpop: str | None = None) -> dict[str, Any]:
        headers = {"DPoP": dpop} if dpop else {}
        response = httpx.post(
            self.metadata["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "scope": " ".join(SCOPES),
                "resource": RESOURCE,
                "client_id": client.client_id,
                "client_assertion_type": (
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                ),
                "client_assertion": client.assertion(self.issuer),
            },
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def revoke(self, client: Client, token: str) -> None:
        response = httpx.post(
            self.metadata["revocation_endpoint"],
            data={
                "token": token,
                "client_id": client.client_id,
                "client_assertion_type": (
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                ),
                "client_assertion": client.assertion(self.issuer),
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text


def _wait_ready(issuer: str, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("oidc-provider exited at start-up")
        try:
            response = httpx.get(f"{issuer}/.well-known/openid-configuration")
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("oidc-provider did not start")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    folder = install_oidc_provider()
    script = folder / "provider.mjs"
    shutil.copyfile(Path(__file__).with_name("provider.mjs"), script)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    clients = [
        Client(name, ECKey.generate_key("P-256", auto_kid=True))
        for name in ("kaitiaki-app", "kaitiaki-opaque-app", "kaitiaki-gateway")
    ]
    signing = ECKey.generate_key("P-256", auto_kid=True).as_dict(private=True)
    config = {
        "issuer": issuer,
        "port": port,
        "jwks": [{**signing, "alg": "ES256", "use": "sig"}],
        "clients": [client.registration() for client in clients],
        "resource": RESOURCE,
        "scopes": SCOPES,
        "opaqueClients": ["kaitiaki-opaque-app"],
    }
    config_path = tmp_path_factory.mktemp("oidc") / "config.json"
    config_path.write_text(json.dumps(config))
    log = (config_path.parent / "provider.log").open("wb")
    process = subprocess.Popen(
        ["node", str(script), str(config_path)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        metadata = _wait_ready(issuer, process)
        yield OidcProvider(issuer, *clients, metadata)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
