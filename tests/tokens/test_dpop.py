"""DPoP proofs (RFC 9449), checked without any network: each fault refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc.jwk import ECKey

from kaitiaki.errors import InvalidDpopProof
from kaitiaki.settings import DpopSettings
from kaitiaki.tokens.dpop import canonical_url, verify_proof
from kaitiaki.tokens.nonce import DpopNonces
from tests.tokens.forge import dpop_proof, segment, unsigned

URL = "https://gw.example/fhir/Patient"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"
NOW = int(time.time())
KEY = ECKey.generate_key("P-256", auto_kid=True)
OTHER = ECKey.generate_key("P-256", auto_kid=True)


def _verify(proof: str, *, method: str = "GET", url: str = URL) -> str:
    checked = verify_proof(
        proof,
        DpopSettings(),
        method=method,
        url=url,
        access_token=TOKEN,
        now=NOW,
        leeway=30,
    )
    return checked.jkt


def test_dpop_valid_proof_gives_key_thumbprint() -> None:
    assert _verify(dpop_proof(KEY, "GET", URL, TOKEN, iat=NOW)) == KEY.thumbprint()


@pytest.mark.parametrize(
    ("htu", "method"),
    [
        ("https://GW.EXAMPLE/fhir/Patient", "GET"),
        ("https://gw.example:443/fhir/Patient", "GET"),
        ("https://gw.example/fhir/Patient?x=1#f", "GET"),
        ("https://gw.example/fhir/%50atient", "GET"),
    ],
)
def test_dpop_htu_is_compared_after_normalisation(htu: str, method: str) -> None:
    assert _verify(dpop_proof(KEY, method, htu, TOKEN, iat=NOW))


def _private_jwk() -> dict[str, Any]:
    return KEY.as_dict(private=True)


FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("wrong method", {"method": "POST"}),
    ("wrong host", {"htu": "https://attacker.example/fhir/Patient"}),
    ("wrong scheme", {"htu": "http://gw.example/fhir/Patient"}),
    ("wrong port", {"htu": "https://gw.example:8443/fhir/Patient"}),
    ("wrong path", {"htu": "https://gw.example/fhir/Observation"}),
    ("dot segments", {"htu": "https://gw.example/fhir/x/../Patient"}),
    ("htu not a URL", {"htu": "Patient"}),
    ("iat too old", {"iat": NOW - 3600}),
    ("iat in the future", {"iat": NOW + 3600}),
    ("iat text", {"claims": {"iat": "now"}}),
    ("ath missing", {"token": None}),
    ("ath of another token", {"claims": {"ath": "x" * 43}}),
    ("jti missing", {"claims": {"jti": None}}),
    ("jti too short", {"jti": "1"}),
    ("htm lower case", {"claims": {"htm": "get"}}),
    ("typ JWT", {"header": {"typ": "JWT"}}),
    ("typ missing", {"header": {"typ": None}}),
    ("alg HS256", {"header": {"alg": "HS256"}}),
    ("alg none", {"header": {"alg": "none"}}),
    ("alg ES384 on P-256 key", {"header": {"alg": "ES384"}}),
    ("jwk missing", {"header": {"jwk": None}}),
    ("jwk private", {"header": {"jwk": "private"}}),
    ("jwk symmetric", {"header": {"jwk": {"kty": "oct", "k": "c2VjcmV0"}}}),
    ("signed by another key", {"signer": OTHER}),
    ("crit", {"header": {"crit": ["x"]}}),
    ("jku", {"header": {"jku": "https://attacker.example/k"}}),
]


@pytest.mark.parametrize(("name", "fault"), FAULTS, ids=[n for n, _ in FAULTS])
def test_dpop_faulty_proof_is_refused(name: str, fault: dict[str, Any]) -> None:
    header = dict(fault.get("header", {}))
    if header.get("jwk") == "private":
        header["jwk"] = _private_jwk()
    proof = dpop_proof(
        KEY,
        "GET",
        fault.get("htu", URL),
        fault.get("token", TOKEN),
        iat=fault.get("iat", NOW),
        jti=fault.get("jti"),
        header=header,
        claims=fault.get("claims"),
        signer=fault.get("signer"),
    )
    proof = _drop_nulls(proof)
    with pytest.raises(InvalidDpopProof):
        _verify(proof, method=fault.get("method", "GET"))


def _drop_nulls(proof: str) -> str:
    """Members set to None in a fault stand for 'absent': re-sign without them."""
    import base64
    import json

    head, body, _ = proof.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    if None not in header.values() and None not in claims.values():
        return proof
    from tests.tokens.forge import signed

    header = {k: v for k, v in header.items() if v is not None}
    claims = {k: v for k, v in claims.items() if v is not None}
    return signed(header, claims, KEY)


@pytest.mark.parametrize(
    "proof",
    ["", "a.b.c", "x" * 9000, unsigned({"typ": "dpop+jwt", "alg": "none"}, {})],
)
def test_dpop_malformed_proof_is_refused(proof: str) -> None:
    with pytest.raises(InvalidDpopProof):
        _verify(proof)


def test_dpop_proof_payload_duplicate_member_is_refused() -> None:
    from tests.tokens.forge import es256

    head = segment(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": KEY.as_dict(private=False)}
    )
    body = segment('{"jti":"aaaaaaaaaa","jti":"bbbbbbbbbb","htm":"GET"}')
    proof = f"{head}.{body}." + es256(f"{head}.{body}", KEY)
    with pytest.raises(InvalidDpopProof):
        _verify(proof)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Gw.Example:443/fhir", "https://gw.example/fhir"),
        ("http://gw.example:80/a", "http://gw.example/a"),
        ("http://gw.example:8080/a?q#f", "http://gw.example:8080/a"),
        ("ftp://gw.example/a", None),
        ("https://user@gw.example/a", None),
        ("https://gw.example/a%2Fb", None),
        ("https:///a", None),
    ],
)
def test_canonical_url_rules(url: str, expected: str | None) -> None:
    assert canonical_url(url) == expected


def test_nonce_is_accepted_within_lifetime_only() -> None:
    nonces = DpopNonces(b"s" * 32, lifetime=300)
    nonce = nonces.issue(NOW)
    assert nonces.accepts(nonce, NOW + 299)
    assert not nonces.accepts(nonce, NOW + 301)
    assert not DpopNonces(b"t" * 32, lifetime=300).accepts(nonce, NOW)
    assert not nonces.accepts(nonce[:-2] + "AA", NOW)
    assert not nonces.accepts(None, NOW)
    assert not nonces.accepts("!!", NOW)


def test_dpop_known_proof_keys_still_check_every_signature() -> None:
    from kaitiaki.tokens.dpop import ProofKeys

    known = ProofKeys(max_entries=2)

    def verify(proof: str) -> str:
        return verify_proof(
            proof,
            DpopSettings(),
            method="GET",
            url=URL,
            access_token=TOKEN,
            now=NOW,
            leeway=30,
            known=known,
        ).jkt

    assert verify(dpop_proof(KEY, "GET", URL, TOKEN, iat=NOW)) == KEY.thumbprint()
    assert known.get(dpop_proof(KEY, "GET", URL, TOKEN).split(".")[0]) is not None
    assert verify(dpop_proof(KEY, "GET", URL, TOKEN, iat=NOW)) == KEY.thumbprint()
    forged = dpop_proof(KEY, "GET", URL, TOKEN, iat=NOW, signer=OTHER)
    with pytest.raises(InvalidDpopProof):
        verify(forged)
    stale = dpop_proof(KEY, "GET", URL, TOKEN, iat=NOW - 3600)
    with pytest.raises(InvalidDpopProof):
        verify(stale)
    with pytest.raises(InvalidDpopProof):  # forgeries never add entries
        verify(dpop_proof(OTHER, "GET", URL, TOKEN, iat=NOW, signer=KEY))
    assert known.get(dpop_proof(OTHER, "GET", URL, TOKEN).split(".")[0]) is None
