"""DPoP-bound and certificate-bound tokens through the whole gateway."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, backends_required
from tests.gateway.conftest import Recorder, StandIn, gateway_toml, upstream_app
from tests.tokens.forge import dpop_proof, self_signed_der, thumbprint_der

FHIR = {"Accept": "application/fhir+json"}
URL = "https://gw.example/fhir/Patient"
CLIENT_KEY = ECKey.generate_key("P-256", auto_kid=True)


@pytest.fixture
def deploy(standin: StandIn, tmp_path: Path) -> Iterator[Callable[..., object]]:
    @contextmanager
    def start(extra: str = "") -> Iterator[tuple[httpx.Client, Recorder]]:
        recorder = Recorder()
        with ThreadServer(upstream_app(recorder)) as upstream:
            toml = gateway_toml(standin.url, upstream.url, tmp_path, extra)
            settings = parse_settings(toml, source="test")
            with (
                ThreadServer(Gateway(settings)) as server,
                httpx.Client(base_url=server.url, timeout=10) as client,
            ):
                yield client, recorder

    yield start


def _bound(standin: StandIn, key: ECKey = CLIENT_KEY) -> str:
    return standin.token({"cnf": {"jkt": key.thumbprint()}})


def _get(
    client: httpx.Client, token: str, proof: str | None, scheme: str = "DPoP"
) -> httpx.Response:
    headers = {**FHIR, "Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return client.get("/fhir/Patient", headers=headers)


def test_dpop_bound_token_with_proof_is_served_once(deploy, standin: StandIn) -> None:
    with deploy() as (client, recorder):
        token = _bound(standin)
        proof = dpop_proof(CLIENT_KEY, "GET", URL, token)
        assert _get(client, token, proof).status_code == 200
        assert len(recorder.requests) == 1
        assert "dpop" not in recorder.requests[0]["headers"]
        replay = _get(client, token, proof)
        assert replay.status_code == 401
        assert 'DPoP error="invalid_dpop_proof"' in replay.headers["www-authenticate"]
        assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("case", "scheme", "proof_for", "status", "challenge"),
    [
        (
            "bound token as Bearer",
            "Bearer",
            "client",
            401,
            'Bearer error="invalid_token"',
        ),
        ("no proof", "DPoP", None, 401, 'DPoP error="invalid_dpop_proof"'),
        (
            "proof by another key",
            "DPoP",
            "other",
            401,
            'DPoP error="invalid_dpop_proof"',
        ),
        (
            "proof for another URL",
            "DPoP",
            "url",
            401,
            'DPoP error="invalid_dpop_proof"',
        ),
        (
            "proof for another token",
            "DPoP",
            "token",
            401,
            'DPoP error="invalid_dpop_proof"',
        ),
    ],
)
def test_dpop_bound_token_refusals(
    deploy,
    standin: StandIn,
    case: str,
    scheme: str,
    proof_for: str | None,
    status: int,
    challenge: str,
) -> None:
    other = ECKey.generate_key("P-256", auto_kid=True)
    token = _bound(standin)
    proofs = {
        None: None,
        "client": dpop_proof(CLIENT_KEY, "GET", URL, token),
        "other": dpop_proof(other, "GET", URL, token),
        "url": dpop_proof(
            CLIENT_KEY, "GET", "https://gw.example/fhir/Observation", token
        ),
        "token": dpop_proof(CLIENT_KEY, "GET", URL, standin.token()),
    }
    with deploy() as (client, recorder):
        response = _get(client, token, proofs[proof_for], scheme)
        assert response.status_code == status, case
        assert challenge in response.headers["www-authenticate"], case
        assert recorder.requests == []


def test_dpop_scheme_with_unbound_token_is_refused(deploy, standin: StandIn) -> None:
    token = standin.token()
    with deploy() as (client, recorder):
        response = _get(client, token, dpop_proof(CLIENT_KEY, "GET", URL, token))
        assert response.status_code == 401
        assert recorder.requests == []


def test_dpop_server_nonce_is_required_then_accepted(deploy, standin: StandIn) -> None:
    with deploy("[auth.dpop]\nrequire_nonce = true\n") as (client, recorder):
        token = _bound(standin)
        first = _get(client, token, dpop_proof(CLIENT_KEY, "GET", URL, token))
        assert first.status_code == 401
        assert 'error="use_dpop_nonce"' in first.headers["www-authenticate"]
        nonce = first.headers["dpop-nonce"]
        second = _get(
            client, token, dpop_proof(CLIENT_KEY, "GET", URL, token, nonce=nonce)
        )
        assert second.status_code == 200
        assert len(recorder.requests) == 1


def test_route_requiring_dpop_refuses_bearer_tokens(deploy, standin: StandIn) -> None:
    extra = '[auth.sender_constraint_routes]\n"/Patient" = "dpop"\n'
    with deploy(extra) as (client, recorder):
        response = _get(client, standin.token(), None, "Bearer")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer error=")
        assert "DPoP algs=" in response.headers["www-authenticate"]
        observation = client.get(
            "/fhir/Observation",
            headers={**FHIR, "Authorization": f"Bearer {standin.token()}"},
        )
        assert observation.status_code == 200
        token = _bound(standin)
        ok = _get(client, token, dpop_proof(CLIENT_KEY, "GET", URL, token))
        assert ok.status_code == 200
        assert len(recorder.requests) == 2


def _cert_header(der: bytes) -> str:
    return ":" + base64.b64encode(der).decode() + ":"


MTLS = """[auth.mtls]
certificate_header = "client-cert"
trusted_proxies = ["127.0.0.1/32"]
"""


def test_certificate_bound_token_needs_that_certificate(
    deploy, standin: StandIn
) -> None:
    der = self_signed_der(CLIENT_KEY)
    other = self_signed_der(ECKey.generate_key("P-256"))
    token = standin.token({"cnf": {"x5t#S256": thumbprint_der(der)}})
    bearer = {**FHIR, "Authorization": f"Bearer {token}"}
    with deploy(MTLS) as (client, recorder):
        ok = client.get(
            "/fhir/Patient", headers={**bearer, "Client-Cert": _cert_header(der)}
        )
        assert ok.status_code == 200
        assert "client-cert" not in recorder.requests[0]["headers"]
        for headers in ({**bearer, "Client-Cert": _cert_header(other)}, bearer):
            assert client.get("/fhir/Patient", headers=headers).status_code == 401
        assert len(recorder.requests) == 1


def test_certificate_header_from_untrusted_peer_is_ignored(
    deploy, standin: StandIn
) -> None:
    der = self_signed_der(CLIENT_KEY)
    token = standin.token({"cnf": {"x5t#S256": thumbprint_der(der)}})
    untrusted = MTLS.replace("127.0.0.1/32", "10.9.9.9/32")
    with deploy(untrusted) as (client, recorder):
        response = client.get(
            "/fhir/Patient",
            headers={
                **FHIR,
                "Authorization": f"Bearer {token}",
                "Client-Cert": _cert_header(der),
            },
        )
        assert response.status_code == 401
        assert recorder.requests == []


def test_route_requiring_mtls_refuses_unbound_tokens(deploy, standin: StandIn) -> None:
    extra = MTLS + '[auth.sender_constraint_routes]\n"/" = "mtls"\n'
    with deploy(extra) as (client, recorder):
        response = client.get(
            "/fhir/Patient",
            headers={**FHIR, "Authorization": f"Bearer {standin.token()}"},
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert recorder.requests == []


def test_token_in_form_body_is_refused(gateway, standin: StandIn) -> None:
    response = gateway.client.post(
        "/fhir/Patient/_search",
        headers={
            **FHIR,
            "Authorization": f"Bearer {standin.token()}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=b"name=x&access_token=" + standin.token().encode(),
    )
    assert response.status_code == 401
    assert gateway.recorder.requests == []
    assert "access_token" not in gateway.audit_path.read_text()


@pytest.mark.redis
def test_dpop_replay_is_refused_by_another_replica(
    standin: StandIn, tmp_path: Path
) -> None:
    import uuid

    import redis

    try:
        redis.Redis(socket_connect_timeout=1).ping()
    except redis.RedisError:
        if backends_required():
            pytest.fail("Redis at 127.0.0.1:6379 is required")
        pytest.skip("Redis not running")
    prefix = f"kaitiaki-test:{uuid.uuid4().hex}:"
    extra = f'[auth.dpop]\nreplay_store = "redis"\nredis_prefix = "{prefix}"\n'
    recorder = Recorder()
    token = _bound(standin)
    proof = dpop_proof(CLIENT_KEY, "GET", URL, token)
    with ThreadServer(upstream_app(recorder)) as upstream:
        toml = gateway_toml(standin.url, upstream.url, tmp_path, extra)
        settings = parse_settings(toml, source="test")
        with (
            ThreadServer(Gateway(settings)) as first,
            ThreadServer(Gateway(settings)) as second,
            httpx.Client(base_url=first.url, timeout=10) as one,
            httpx.Client(base_url=second.url, timeout=10) as two,
        ):
            assert _get(one, token, proof).status_code == 200
            assert _get(two, token, proof).status_code == 401
    assert len(recorder.requests) == 1
    client = redis.Redis()
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


async def _asgi_get(gateway: Gateway, token: str, chain: list[str]) -> int:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/fhir/Patient",
        "raw_path": b"/fhir/Patient",
        "query_string": b"",
        "scheme": "https",
        "headers": [
            (b"host", b"gw.example"),
            (b"accept", b"application/fhir+json"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("203.0.113.5", 50000),
        "extensions": {"tls": {"client_cert_chain": chain}},
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await gateway(scope, receive, send)
    return int(str(sent[0]["status"]))


@pytest.mark.anyio
async def test_certificate_from_tls_connection_binds_token(
    standin: StandIn, tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    def pem(der: bytes) -> str:
        return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()

    der = self_signed_der(CLIENT_KEY)
    other = self_signed_der(ECKey.generate_key("P-256"))
    token = standin.token({"cnf": {"x5t#S256": thumbprint_der(der)}})
    recorder = Recorder()
    with ThreadServer(upstream_app(recorder)) as upstream:
        settings = parse_settings(
            gateway_toml(standin.url, upstream.url, tmp_path), source="test"
        )
        gateway = Gateway(settings)
        await gateway.startup()
        try:
            assert await _asgi_get(gateway, token, [pem(der)]) == 200
            assert await _asgi_get(gateway, token, [pem(other)]) == 401
            assert await _asgi_get(gateway, token, []) == 401
        finally:
            await gateway.shutdown()
    assert len(recorder.requests) == 1
