"""A gateway in front of a recording upstream, trusting a stand-in issuer."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, free_port


@dataclass
class Recorder:
    requests: list[dict[str, Any]] = field(default_factory=list)


def upstream_app(recorder: Recorder) -> Starlette:
    async def anything(request: Request) -> Response:
        body = await request.body()
        recorder.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        headers = {
            "set-cookie": "upstream=1",
            "server": "internal/1.0",
            "x-powered-by": "framework",
        }
        if "boom" in request.url.path:
            return Response(
                "Traceback (most recent call last): db.internal:5432",
                503,
                headers={"retry-after": "7", "server": "internal/1.0"},
            )
        if request.method == "POST":
            headers["location"] = f"{request.base_url}fhir/Patient/new/_history/1"
            return JSONResponse(
                {"resourceType": "Patient", "id": "new"},
                201,
                headers=headers,
                media_type="application/fhir+json",
            )
        return JSONResponse(
            {"resourceType": "Bundle", "type": "searchset"},
            headers=headers,
            media_type="application/fhir+json",
        )

    return Starlette(
        routes=[
            Route(
                "/{path:path}",
                anything,
                methods=["GET", "POST", "PUT", "DELETE", "HEAD"],
            )
        ]
    )


@dataclass
class StandIn:
    key: ECKey
    url: str
    jwks_hits: list[int]

    def claims(self, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": "https://gw.example/fhir",
            "sub": "svc",
            "client_id": "svc",
            "scope": "system/*.rs",
            "jti": "j1",
            "iat": now,
            "exp": now + 300,
        }
        payload.update(extra)
        return payload

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        key: Any = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        payload = self.claims(**(claims or {}))
        for name in drop:
            payload.pop(name, None)
        head = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        head.update(header or {})
        return jwt.encode(head, payload, key or self.key)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], key: ECKey) -> str:
    """Sign without any library's header checks, as an attacker would."""
    signing_input = (
        b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    )
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def issuer_app(key: ECKey, hits: list[int], port: int) -> Starlette:
    url = f"http://127.0.0.1:{port}"

    async def discovery(request: Request) -> Response:
        return JSONResponse({"issuer": url, "jwks_uri": f"{url}/jwks"})

    async def jwks(request: Request) -> Response:
        hits.append(1)
        return JSONResponse(
            {"keys": [key.as_dict(private=False)]},
            headers={"cache-control": "max-age=300"},
        )

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
        ]
    )


@pytest.fixture
def standin() -> Iterator[StandIn]:
    key = ECKey.generate_key("P-256", auto_kid=True)
    hits: list[int] = []
    port = free_port()
    with ThreadServer(issuer_app(key, hits, port), port) as server:
        yield StandIn(key, server.url, hits)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# Most tests exercise other controls with client-credentials tokens; the grant
# policy itself is tested with its default in tests/gateway/test_authorise.py.
ALLOW_CLIENT_CREDENTIALS = 'client_credentials = "allow"'


def gateway_toml(
    issuer: str,
    upstream: str,
    tmp: Path,
    extra: str = "",
    authorise: str = ALLOW_CLIENT_CREDENTIALS,
) -> str:
    return f"""
[gateway]
port = 0
public_url = "https://gw.example"
upstream = "{upstream}/fhir"
instance = "test-gw"
[auth]
issuer = "{issuer}"
audience = "https://gw.example/fhir"
algorithms = ["ES256"]
[limits]
default_rate = "1000/minute"
address_rate = "5000/minute"
[limits.clients]
limited = "3/minute"
[authorise]
{authorise}
[audit]
sink = "jsonl"
path = "{tmp / "audit.jsonl"}"
{extra}
"""


@dataclass
class GatewayUnderTest:
    client: httpx.Client
    recorder: Recorder
    audit_path: Path

    def records(self) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text().splitlines()
        return [json.loads(line) for line in lines]

    def events(self) -> list[dict[str, Any]]:
        """The request events (security events and checkpoints left out)."""
        return [r for r in self.records() if r["event_type"] == "request"]


@pytest.fixture
def gateway(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> Iterator[GatewayUnderTest]:
    with ThreadServer(upstream_app(recorder)) as upstream:
        settings = parse_settings(
            gateway_toml(standin.url, upstream.url, tmp_path), source="test"
        )
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield GatewayUnderTest(client, recorder, tmp_path / "audit.jsonl")


def raw_exchange(port: int, payload: bytes, *, may_close_early: bool = False) -> bytes:
    """Send raw bytes to a listener on loopback and read until it closes.
    ``may_close_early``: the listener may refuse and close while the payload
    is still being sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if may_close_early:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload)
        else:
            sock.sendall(payload)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    return received
