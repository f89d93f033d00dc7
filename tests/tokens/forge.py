"""Build tokens and proofs byte by byte, as an attacker (or a careful client) would."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return b64(text.encode())


def es256(signing_input: str, key: ECKey) -> str:
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def signed(header: Any, payload: Any, key: ECKey) -> str:
    signing_input = segment(header) + "." + segment(payload)
    return signing_input + "." + es256(signing_input, key)


def hmac_signed(header: Any, payload: Any, secret: bytes, digest: Any) -> str:
    signing_input = segment(header) + "." + segment(payload)
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    return signing_input + "." + b64(mac)


def unsigned(header: Any, payload: Any, signature: str = "") -> str:
    return segment(header) + "." + segment(payload) + "." + signature


def self_signed_der(key: ECKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def thumbprint_der(der: bytes) -> str:
    return b64(hashlib.sha256(der).digest())


def dpop_proof(
    key: ECKey,
    method: str,
    url: str,
    token: str | None,
    *,
    iat: int | None = None,
    jti: str | None = None,
    nonce: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    signer: ECKey | None = None,
) -> str:
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    head.update(header or {})
    body: dict[str, Any] = {
        "jti": jti or str(uuid.uuid4()),
        "htm": method,
        "htu": url,
        "iat": int(time.time()) if iat is None else iat,
    }
    if token is not None:
        body["ath"] = b64(hashlib.sha256(token.encode()).digest())
    if nonce is not None:
        body["nonce"] = nonce
    body.update(claims or {})
    return signed(head, body, signer or key)
