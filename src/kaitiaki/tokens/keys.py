"""Public verification keys: the algorithm is fixed by the key, never the token.

An EC P-256 key verifies only ES256, an Ed25519 key only EdDSA, an RSA key
only the RSA algorithms it declares (or RS256/PS256/PS384/PS512 when it
declares none). Symmetric keys, keys for encryption and private members are
never imported. Keys are imported with joserfc; each keeps a ready
``cryptography`` verifier per algorithm, so verifying a token is one call on
the already-split segments.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = ["Key", "VerificationKey", "import_public_key"]

Key = ECKey | OKPKey | RSAKey
#: Raises InvalidSignature (or ValueError) unless the signature verifies.
Check = Callable[[bytes, bytes], None]

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVE_ALGORITHM = {
    "P-256": "ES256",
    "P-384": "ES384",
    "P-521": "ES512",
    "Ed25519": "EdDSA",
}
_RSA_ALGORITHMS = frozenset({"RS256", "PS256", "PS384", "PS512"})
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_MIN_RSA_BITS = 2048


def _ecdsa_check(public: ec.EllipticCurvePublicKey, alg: str) -> Check:
    size = (public.curve.key_size + 7) // 8
    scheme = ec.ECDSA(_HASHES[alg[2:]]())

    def check(message: bytes, signature: bytes) -> None:
        # JWS carries r || s of fixed width (RFC 7518 §3.4), never DER.
        if len(signature) != 2 * size:
            raise InvalidSignature
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        public.verify(encode_dss_signature(r, s), message, scheme)

    return check


def _rsa_check(public: rsa.RSAPublicKey, alg: str) -> Check:
    digest = _HASHES[alg[2:]]
    pad: padding.AsymmetricPadding = padding.PKCS1v15()
    if alg.startswith("PS"):
        pad = padding.PSS(mgf=padding.MGF1(digest()), salt_length=digest().digest_size)

    def check(message: bytes, signature: bytes) -> None:
        public.verify(signature, message, pad, digest())

    return check


def _reloaded(public: Any) -> Any:
    """The same public key loaded from its DER form: OpenSSL verifies with a
    key loaded this way markedly faster than with one built from the JWK's
    numbers (measured: about 40 % for P-256)."""
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return load_der_public_key(der)


def _check_for(key: Key, alg: str) -> Check:
    public = _reloaded(key.public_key)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _ecdsa_check(public, alg)
    if isinstance(public, rsa.RSAPublicKey):
        return _rsa_check(public, alg)
    if isinstance(public, ed25519.Ed25519PublicKey):
        verify = public.verify
        return lambda message, signature: verify(signature, message)
    raise ValueError("unsupported key")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and, per algorithm it may verify, a ready verifier.

    The verifiers are built once when the key is imported: checking a token
    is one call on the already-split segments.
    """

    key: Key
    checks: Mapping[str, Check]

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(self.checks)

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` over ``signing_input`` verifies with ``alg``."""
        check = self.checks.get(alg)
        if check is None:
            return False
        try:
            check(signing_input, signature)
        except (InvalidSignature, ValueError):
            return False
        return True


def _algorithms(kty: str, public: dict[str, Any]) -> frozenset[str]:
    declared = public.get("alg")
    if kty == "RSA":
        wanted = frozenset({declared}) if declared else _RSA_ALGORITHMS
        return wanted & _RSA_ALGORITHMS
    curve_alg = _CURVE_ALGORITHM.get(str(public.get("crv")))
    if curve_alg is None or (declared and declared != curve_alg):
        return frozenset()
    return frozenset({curve_alg})


def _usable(jwk: dict[str, Any]) -> bool:
    ops = jwk.get("key_ops")
    ops_ok = ops is None or (isinstance(ops, list) and "verify" in ops)
    return ops_ok and jwk.get("use", "sig") == "sig"


def _rsa_bits(public: dict[str, Any]) -> int:
    modulus = public.get("n")
    if not isinstance(modulus, str):
        return 0
    raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    return int.from_bytes(raw, "big").bit_length()


def _import(kty: str, public: dict[str, Any]) -> Key:
    if kty == "EC":
        return ECKey.import_key(public)
    if kty == "OKP":
        return OKPKey.import_key(public)
    return RSAKey.import_key(public)


def import_public_key(jwk: dict[str, Any]) -> VerificationKey | None:
    """The verification key a published JWK stands for, or None if unusable."""
    kty = jwk.get("kty")
    if kty not in ("EC", "OKP", "RSA") or not _usable(jwk):
        return None
    public = {
        name: value
        for name, value in jwk.items()
        if name not in _PRIVATE_MEMBERS and name != "key_ops"
    }
    algorithms = _algorithms(str(kty), public)
    if not algorithms:
        return None
    try:
        # Weak RSA keys are refused before they are ever imported.
        if kty == "RSA" and _rsa_bits(public) < _MIN_RSA_BITS:
            return None
        key = _import(str(kty), public)
        checks = {alg: _check_for(key, alg) for alg in sorted(algorithms)}
    except (JoseError, ValueError, TypeError, binascii.Error):
        return None
    return VerificationKey(key, checks)
