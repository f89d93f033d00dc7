"""Helpers for the issuer tests: settings in a tmp dir, assertion forging."""

from __future__ import annotations

import secrets
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import Key
from starlette.exceptions import StarletteDeprecationWarning

from kaitiaki.issuer.assertion import CLIENT_ASSERTION_TYPE
from kaitiaki.issuer.keys import load_private_key
from kaitiaki.settings import DemoClient, DevIssuerSettings

# Starlette warns once, on import, that its TestClient prefers httpx2; the
# locked dependencies carry httpx, which works. Only that warning is ignored.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["AUDIENCE", "Forge", "TestClient", "free_port", "make_settings"]

AUDIENCE = "http://127.0.0.1:8080/fhir"


def make_settings(tmp_path: Path, port: int = 8090) -> DevIssuerSettings:
    clients_dir = tmp_path / "clients"
    return DevIssuerSettings(
        port=port,
        state_dir=str(tmp_path / "issuer"),
        audience=AUDIENCE,
        clients=(
            DemoClient(
                client_id="demo-system",
                scope="system/*.rs",
                key_path=str(clients_dir / "demo-system.jwk"),
            ),
            DemoClient(
                client_id="demo-writer",
                scope="system/*.cruds",
                key_path=str(clients_dir / "demo-writer.jwk"),
            ),
        ),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Forge:
    """Builds client assertions and token forms for the issuer under test."""

    def __init__(self, settings: DevIssuerSettings) -> None:
        self.settings = settings
        self.keys = {
            c.client_id: load_private_key(Path(c.key_path)) for c in settings.clients
        }

    @property
    def token_endpoint(self) -> str:
        return f"{self.settings.url}/token"

    def claims(
        self, client_id: str = "demo-system", **overrides: Any
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": self.token_endpoint,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def assertion(
        self,
        client_id: str = "demo-system",
        *,
        key: Key | None = None,
        **overrides: Any,
    ) -> str:
        signer = key or self.keys[client_id]
        header = {"alg": "ES256", "kid": signer.kid}
        return jwt.encode(header, self.claims(client_id, **overrides), signer)

    def form(
        self, assertion: str | None = None, **params: str | None
    ) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion
            if assertion is not None
            else self.assertion(),
        }
        form.update(params)  # type: ignore[arg-type]
        return {name: value for name, value in form.items() if value is not None}
