"""The attack table: forged and malformed access tokens, each kind in several
spellings (../shared/cases/attacks.md JWT-*). Every one gets 401 with
``invalid_token``; the upstream sees nothing, no URL named in a token is
ever fetched, and no part of the token reaches the reply or a log."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)
from joserfc.jwk import ECKey

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import (
    Recorder,
    StandIn,
    gateway_toml,
    issuer_app,
    upstream_app,
)
from tests.tokens.forge import (
    b64,
    hmac_signed,
    segment,
    self_signed_der,
    signed,
    unsigned,
)

FHIR = {"Accept": "application/fhir+json"}


@dataclass
class Attack:
    standin: StandIn
    listener: str
    other: ECKey

    def head(self, **extra: Any) -> dict[str, Any]:
        return {"alg": "ES256", "typ": "at+jwt", "kid": self.standin.key.kid, **extra}

    def claims(self, **extra: Any) -> dict[str, Any]:
        return self.standin.claims(**extra)

    def sign(self, header: Any = None, payload: Any = None) -> str:
        return signed(
            self.head() if header is None else header,
            self.claims() if payload is None else payload,
            self.standin.key,
        )

    def public_pem(self) -> bytes:
        return self.standin.key.public_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )


def _hs(attack: Attack, secret: bytes, alg: str = "HS256") -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    return hmac_signed(attack.head(alg=alg), attack.claims(), secret, digest)


def _signature_swap(attack: Attack, signature: bytes) -> str:
    parts = attack.sign().split(".")
    return f"{parts[0]}.{parts[1]}.{b64(signature)}"


def _der_signature(attack: Attack) -> str:
    parts = attack.sign().split(".")
    raw = base64.urlsafe_b64decode(parts[2] + "==")
    der = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    return f"{parts[0]}.{parts[1]}.{b64(der)}"


_ORDER = ec.SECP256R1().key_size and int(
    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16
)

Case = tuple[str, Callable[[Attack], str]]
CASES: list[Case] = [
    # JWT-01: alg none, in several casings and signature forms.
    ("alg none", lambda a: unsigned(a.head(alg="none"), a.claims())),
    ("alg None", lambda a: unsigned(a.head(alg="None"), a.claims())),
    ("alg NONE", lambda a: unsigned(a.head(alg="NONE"), a.claims())),
    ("alg nOnE", lambda a: unsigned(a.head(alg="nOnE"), a.claims())),
    (
        "alg none with junk signature",
        lambda a: unsigned(a.head(alg="none"), a.claims(), "AAAA"),
    ),
    ("alg missing", lambda a: a.sign({"typ": "at+jwt", "kid": a.standin.key.kid})),
    # JWT-02: HMAC keyed with the issuer's public key, in each text form.
    ("HS256 public key PEM", lambda a: _hs(a, a.public_pem())),
    (
        "HS256 public key JWK",
        lambda a: _hs(a, json.dumps(a.standin.key.as_dict(private=False)).encode()),
    ),
    (
        "HS256 public key OpenSSH",
        lambda a: _hs(
            a,
            a.standin.key.public_key.public_bytes(
                Encoding.OpenSSH, PublicFormat.OpenSSH
            ),
        ),
    ),
    ("HS384 public key PEM", lambda a: _hs(a, a.public_pem(), "HS384")),
    ("HS256 empty secret", lambda a: _hs(a, b"")),
    # JWT-04: ECDSA psychic signatures and malformed signatures.
    ("ES256 r=s=0", lambda a: _signature_swap(a, b"\0" * 64)),
    ("ES256 r=s=n", lambda a: _signature_swap(a, _ORDER.to_bytes(32, "big") * 2)),
    ("ES256 r=0 s=1", lambda a: _signature_swap(a, b"\0" * 32 + b"\0" * 31 + b"\1")),
    ("ES256 DER signature", _der_signature),
    ("ES256 empty signature", lambda a: ".".join(a.sign().split(".")[:2]) + "."),
    ("ES256 truncated signature", lambda a: a.sign()[:-4]),
    ("ES256 signed by another key", lambda a: signed(a.head(), a.claims(), a.other)),
    (
        "payload tampered after signing",
        lambda a: (
            a.sign().split(".")[0]
            + "."
            + segment(a.claims(scope="system/*.cruds"))
            + "."
            + a.sign().split(".")[2]
        ),
    ),
    # JWT-06: key locators in the header are never followed.
    ("jku", lambda a: a.sign(a.head(jku=a.listener + "/jwks.json"))),
    ("x5u", lambda a: a.sign(a.head(x5u=a.listener + "/cert.pem"))),
    (
        "jku with unknown kid",
        lambda a: signed(
            a.head(jku=a.listener + "/jwks.json", kid="attacker"), a.claims(), a.other
        ),
    ),
    (
        "embedded jwk",
        lambda a: signed(
            a.head(jwk=a.other.as_dict(private=False), kid=a.other.kid),
            a.claims(),
            a.other,
        ),
    ),
    (
        "embedded x5c",
        lambda a: signed(
            a.head(x5c=[base64.b64encode(self_signed_der(a.other)).decode()]),
            a.claims(),
            a.other,
        ),
    ),
    # JWT-08: crit is never understood.
    (
        "crit unknown",
        lambda a: a.sign(a.head(crit=["x-acme-mfa"], **{"x-acme-mfa": 1})),
    ),
    ("crit empty", lambda a: a.sign(a.head(crit=[]))),
    ("crit b64", lambda a: a.sign(a.head(crit=["b64"], b64=False))),
    ("crit as string", lambda a: a.sign(a.head(crit="exp"))),
    # JWT-09: audience missing or wrong.
    (
        "aud missing",
        lambda a: a.sign(payload={k: v for k, v in a.claims().items() if k != "aud"}),
    ),
    ("aud other api", lambda a: a.sign(payload=a.claims(aud="billing-api"))),
    ("aud empty list", lambda a: a.sign(payload=a.claims(aud=[]))),
    ("aud other list", lambda a: a.sign(payload=a.claims(aud=["billing-api"]))),
    ("aud number", lambda a: a.sign(payload=a.claims(aud=1))),
    (
        "aud case variant",
        lambda a: a.sign(payload=a.claims(aud="https://GW.example/fhir")),
    ),
    (
        "aud trailing slash",
        lambda a: a.sign(payload=a.claims(aud="https://gw.example/fhir/")),
    ),
    # JWT-11: exp missing or not a number; time claims outside the window.
    (
        "exp missing",
        lambda a: a.sign(payload={k: v for k, v in a.claims().items() if k != "exp"}),
    ),
    ("exp text date", lambda a: a.sign(payload=a.claims(exp="2099-01-01T00:00:00Z"))),
    ("exp numeric text", lambda a: a.sign(payload=a.claims(exp="4102444800"))),
    ("exp null", lambda a: a.sign(payload=a.claims(exp=None))),
    ("exp true", lambda a: a.sign(payload=a.claims(exp=True))),
    ("exp in the past", lambda a: a.sign(payload=a.claims(exp=1000, iat=900))),
    ("exp too far (lifetime)", lambda a: a.sign(payload=a.claims(exp=9_999_999_999))),
    ("exp huge number", lambda a: a.sign(payload='{"exp":1e400}')),
    (
        "nbf in the future",
        lambda a: a.sign(payload=a.claims(nbf=a.claims()["iat"] + 3600)),
    ),
    (
        "iat in the future",
        lambda a: a.sign(payload=a.claims(iat=a.claims()["iat"] + 3600)),
    ),
    (
        "iat missing (strict)",
        lambda a: a.sign(payload={k: v for k, v in a.claims().items() if k != "iat"}),
    ),
    ("iss other", lambda a: a.sign(payload=a.claims(iss="https://attacker.example"))),
    ("iss trailing slash", lambda a: a.sign(payload=a.claims(iss=a.standin.url + "/"))),
    # JWT-15 and parsing: size, duplicates, base64, JSON shapes.
    (
        "oversized header segment",
        lambda a: segment({"alg": "ES256", "pad": "x" * 9000}) + ".e30.AA",
    ),
    (
        "duplicate header member",
        lambda a: a.sign(
            f'{{"alg":"ES256","typ":"at+jwt","kid":"{a.standin.key.kid}","alg":"none"}}'
        ),
    ),
    (
        "duplicate payload member",
        lambda a: a.sign(payload=f'{{"iss":"x","iss":"{a.standin.url}"}}'),
    ),
    ("base64 padding", lambda a: a.sign().replace(".", "=.", 1)),
    (
        "base64 standard alphabet",
        lambda a: a.sign().replace("-", "+").replace("_", "/") + "+/",
    ),
    ("base64 stray bits", lambda a: _stray_bits(a.sign())),
    ("header not an object", lambda a: a.sign(["ES256"])),
    ("payload not an object", lambda a: a.sign(payload="[1,2]")),
    ("payload NaN", lambda a: a.sign(payload='{"exp":NaN}')),
    ("five-part JWE", lambda a: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"),
    ("two segments", lambda a: ".".join(a.sign().split(".")[:2])),
    # typ, kid and the algorithm/key binding.
    ("typ JWT", lambda a: a.sign(a.head(typ="JWT"))),
    ("typ dpop+jwt", lambda a: a.sign(a.head(typ="dpop+jwt"))),
    ("typ missing", lambda a: a.sign({"alg": "ES256", "kid": a.standin.key.kid})),
    ("kid too long", lambda a: a.sign(a.head(kid="k" * 300))),
    ("kid path characters", lambda a: a.sign(a.head(kid="../../etc/passwd\\x"))),
    ("kid number", lambda a: a.sign(a.head(kid=7))),
    ("kid missing", lambda a: a.sign({"alg": "ES256", "typ": "at+jwt"})),
    ("alg ES384 on P-256 key", lambda a: a.sign(a.head(alg="ES384"))),
    ("alg RS256 not allowed", lambda a: a.sign(a.head(alg="RS256"))),
    ("alg PS256 not in list", lambda a: a.sign(a.head(alg="PS256"))),
    ("cnf unknown binding", lambda a: a.sign(payload=a.claims(cnf={"kid": "x"}))),
    (
        "cnf jkt as bearer",
        lambda a: a.sign(payload=a.claims(cnf={"jkt": a.other.thumbprint()})),
    ),
    (
        "cnf x5t without certificate",
        lambda a: a.sign(payload=a.claims(cnf={"x5t#S256": "abc"})),
    ),
    ("opaque without introspection", lambda a: "opaque-token-value-0123456789"),
]


def _stray_bits(token: str) -> str:
    head, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) | 1]
    return f"{head}.{payload}.{signature[:-1]}{last}"


@dataclass
class Deployed:
    client: httpx.Client
    recorder: Recorder
    listener_hits: list[str]
    attack: Attack
    audit_path: Path


def _listener_app(hits: list[str]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def anything(request: Request) -> Response:
        hits.append(request.url.path)
        return Response("{}", media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", anything)])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("attacks")
    key = ECKey.generate_key("P-256", auto_kid=True)
    jwks_hits: list[int] = []
    port = free_port()
    recorder = Recorder()
    hits: list[str] = []
    with (
        ThreadServer(issuer_app(key, jwks_hits, port), port) as issuer,
        ThreadServer(upstream_app(recorder)) as upstream,
        ThreadServer(_listener_app(hits)) as listener,
    ):
        settings = parse_settings(
            gateway_toml(issuer.url, upstream.url, tmp), source="test"
        )
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            standin = StandIn(key, issuer.url, jwks_hits)
            attack = Attack(
                standin, listener.url, ECKey.generate_key("P-256", auto_kid=True)
            )
            yield Deployed(client, recorder, hits, attack, tmp / "audit.jsonl")


def test_attack_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_baseline_token_is_accepted(deployed: Deployed) -> None:
    token = deployed.attack.sign()
    response = deployed.client.get(
        "/fhir/Patient", headers={**FHIR, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    deployed.recorder.requests.clear()


@pytest.mark.parametrize(("name", "build"), CASES, ids=[name for name, _ in CASES])
def test_forged_token_is_refused(
    deployed: Deployed,
    caplog: pytest.LogCaptureFixture,
    name: str,
    build: Callable[[Attack], str],
) -> None:
    token = build(deployed.attack)
    caplog.set_level(logging.DEBUG)
    response = deployed.client.get(
        "/fhir/Patient", headers={**FHIR, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, name
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert deployed.recorder.requests == []
    assert deployed.listener_hits == []
    fragments = {part[:24] for part in token.split(".") if len(part) >= 24}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    logged += deployed.audit_path.read_text()
    for fragment in fragments:
        assert fragment not in response.text
        assert fragment not in logged


def test_oversized_token_beyond_header_limit_is_431(deployed: Deployed) -> None:
    token = segment({"alg": "ES256", "pad": "x" * 30000}) + ".e30.AA"
    response = deployed.client.get(
        "/fhir/Patient", headers={**FHIR, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 431
    assert deployed.recorder.requests == []


def test_unknown_kid_storm_fetches_jwks_at_most_once(deployed: Deployed) -> None:
    attack = deployed.attack
    before = len(attack.standin.jwks_hits)
    for index in range(200):
        token = signed(
            attack.head(kid=f"random-{index}"), attack.claims(), attack.other
        )
        response = deployed.client.get(
            "/fhir/Patient", headers={**FHIR, "Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    assert len(attack.standin.jwks_hits) - before <= 1
    assert deployed.recorder.requests == []


def test_rsa_key_of_1024_bits_is_never_loaded() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kaitiaki.tokens.keys import import_public_key

    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": "weak",
        "n": b64(numbers.n.to_bytes(128, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }
    assert import_public_key(jwk) is None


@pytest.mark.parametrize(
    ("claims", "issue_code"),
    [({"exp": 1000, "iat": 900}, "expired"), ({"aud": "billing-api"}, "login")],
)
def test_refusal_issue_codes(
    deployed: Deployed, claims: dict[str, Any], issue_code: str
) -> None:
    token = deployed.attack.sign(payload=deployed.attack.claims(**claims))
    response = deployed.client.get(
        "/fhir/Patient", headers={**FHIR, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == issue_code
    assert deployed.recorder.requests == []
