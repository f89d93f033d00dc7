"""Token requests the issuer must refuse, with the RFC 6749 §5.2 error."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from issuer_support import Forge, TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from kaitiaki.issuer.keys import generate_signing_key

#: Put in the request wherever possible; must never come back in a reply.
MARKER = "ECHO-MARKER-7f3a"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(forge: Forge) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(forge.claims(jti=MARKER)).encode())
    return f"{header}.{payload}."


def _hs256_with_public_key(forge: Forge) -> str:
    public_pem = forge.keys["demo-system"].as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(forge.claims(jti=MARKER)).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{_b64(mac.digest())}"


def _es384_header(forge: Forge) -> str:
    key = ECKey.generate_key("P-384", private=True)
    claims = forge.claims(jti=MARKER)
    return jwt.encode({"alg": "ES384"}, claims, key, algorithms=["ES384"])


FormCase = Callable[[Forge], dict[str, str]]
NOW = int(time.time())

CASES: list[tuple[str, FormCase, str, int]] = [
    (
        "wrong-grant-type",
        lambda f: f.form(grant_type=MARKER),
        "unsupported_grant_type",
        400,
    ),
    ("no-grant-type", lambda f: f.form(grant_type=None), "invalid_request", 400),
    (
        "no-assertion",
        lambda f: f.form(client_assertion=None, client_assertion_type=None),
        "invalid_client",
        401,
    ),
    ("empty-assertion", lambda f: f.form(client_assertion=""), "invalid_client", 401),
    (
        "garbled-assertion",
        lambda f: f.form(client_assertion=f"{MARKER}.{MARKER}.{MARKER}"),
        "invalid_client",
        401,
    ),
    (
        "wrong-assertion-type",
        lambda f: f.form(client_assertion_type=MARKER),
        "invalid_client",
        401,
    ),
    (
        "signed-by-another-key",
        lambda f: f.form(f.assertion(key=generate_signing_key(), jti=MARKER)),
        "invalid_client",
        401,
    ),
    (
        "signed-by-other-client",
        lambda f: f.form(f.assertion(key=f.keys["demo-writer"], jti=MARKER)),
        "invalid_client",
        401,
    ),
    (
        "wrong-aud",
        lambda f: f.form(f.assertion(aud=f"https://{MARKER}.example/token")),
        "invalid_client",
        401,
    ),
    ("no-aud", lambda f: f.form(f.assertion(aud=None)), "invalid_client", 401),
    (
        "expired",
        lambda f: f.form(f.assertion(iat=NOW - 600, exp=NOW - 120)),
        "invalid_client",
        401,
    ),
    ("no-exp", lambda f: f.form(f.assertion(exp=None)), "invalid_client", 401),
    ("no-iat", lambda f: f.form(f.assertion(iat=None)), "invalid_client", 401),
    ("string-exp", lambda f: f.form(f.assertion(exp=MARKER)), "invalid_client", 401),
    (
        "exp-too-far-ahead",
        lambda f: f.form(f.assertion(exp=NOW + 3600)),
        "invalid_client",
        401,
    ),
    ("future-iat", lambda f: f.form(f.assertion(iat=NOW + 600)), "invalid_client", 401),
    ("no-jti", lambda f: f.form(f.assertion(jti=None)), "invalid_client", 401),
    (
        "iss-not-sub",
        lambda f: f.form(f.assertion(sub="demo-writer")),
        "invalid_client",
        401,
    ),
    (
        "unknown-client",
        lambda f: f.form(
            f.assertion(MARKER, key=generate_signing_key()), client_id=MARKER
        ),
        "invalid_client",
        401,
    ),
    (
        "client-id-mismatch",
        lambda f: f.form(client_id="demo-writer"),
        "invalid_client",
        401,
    ),
    ("alg-none", lambda f: f.form(_unsigned(f)), "invalid_client", 401),
    (
        "hs256-public-key-secret",
        lambda f: f.form(_hs256_with_public_key(f)),
        "invalid_client",
        401,
    ),
    (
        "alg-not-the-registered-one",
        lambda f: f.form(_es384_header(f)),
        "invalid_client",
        401,
    ),
    (
        "scope-not-registered",
        lambda f: f.form(scope=f"system/*.rs {MARKER}"),
        "invalid_scope",
        400,
    ),
    (
        "scope-of-other-client",
        lambda f: f.form(scope="system/*.cruds"),
        "invalid_scope",
        400,
    ),
    ("scope-empty", lambda f: f.form(scope=""), "invalid_scope", 400),
    (
        "scope-double-space",
        lambda f: f.form(scope="system/*.rs  system/*.rs"),
        "invalid_scope",
        400,
    ),
    (
        "resource-elsewhere",
        lambda f: f.form(resource=f"https://{MARKER}.example/fhir"),
        "invalid_target",
        400,
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "status"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_token_refusal_error_and_status(
    client: TestClient, forge: Forge, build: FormCase, error: str, status: int
) -> None:
    form = build(forge)

    response = client.post("/token", data=form)

    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert "WWW-Authenticate" in response.headers
    assert MARKER not in response.text
    for value in form.values():
        if len(value) > 20:
            assert value not in response.text


def test_token_replayed_jti_refused(client: TestClient, forge: Forge) -> None:
    form = forge.form()

    first = client.post("/token", data=form)
    second = client.post("/token", data=form)

    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("grant_type=client_credentials", "application/json"),
        ("grant_type=client_credentials", "text/plain"),
        ("grant_type=client_credentials&grant_type=client_credentials", None),
        ("grant_type=client_credentials&" + "x=" + "y" * 17_000, None),
        ("grant_type=%ff%fe", None),
    ],
    ids=["json", "text", "duplicate-parameter", "too-large", "not-utf8"],
)
def test_token_malformed_body_invalid_request(
    client: TestClient, content: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type or "application/x-www-form-urlencoded"}

    response = client.post("/token", content=content, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token_get_method_not_allowed(client: TestClient) -> None:
    assert client.get("/token").status_code == 405
