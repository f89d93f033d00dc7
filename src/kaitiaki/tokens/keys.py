"""Public verification keys: the algorithm is fixed by the key, never the token.

An EC P-256 key verifies only ES256, an Ed25519 key only EdDSA, an RSA key
only the RSA algorithms it declares (or RS256/PS256/PS384/PS512 when it
declares none). Symmetric keys, keys for encryption and private members are
never imported. Each key keeps its joserfc algorithm objects, so verifying a
token is one call on the already-split segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwa import (
    EdDSAAlgorithm,
    ESAlgorithm,
    JWSAlgModel,
    RSAAlgorithm,
    RSAPSSAlgorithm,
)
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = ["ALGORITHMS", "Key", "VerificationKey", "import_public_key"]

Key = ECKey | OKPKey | RSAKey

#: The asymmetric JWS algorithms Kaitiaki can verify; there is no ``none``
#: and no HMAC entry, so neither can ever be selected.
ALGORITHMS: dict[str, JWSAlgModel] = {
    "ES256": ESAlgorithm("ES256", "P-256", 256),
    "ES384": ESAlgorithm("ES384", "P-384", 384),
    "ES512": ESAlgorithm("ES512", "P-521", 512),
    "EdDSA": EdDSAAlgorithm(),
    "RS256": RSAAlgorithm(256),
    "PS256": RSAPSSAlgorithm(256),
    "PS384": RSAPSSAlgorithm(384),
    "PS512": RSAPSSAlgorithm(512),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVE_ALGORITHM = {
    "P-256": "ES256",
    "P-384": "ES384",
    "P-521": "ES512",
    "Ed25519": "EdDSA",
}
_RSA_ALGORITHMS = frozenset({"RS256", "PS256", "PS384", "PS512"})
_MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the algorithms it may verify."""

    key: Key
    algorithms: frozenset[str]

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` over ``signing_input`` verifies with ``alg``."""
        if alg not in self.algorithms:
            return False
        try:
            return ALGORITHMS[alg].verify(signing_input, signature, self.key)
        except (JoseError, ValueError, TypeError):
            return False


def _algorithms(kty: str, public: dict[str, Any]) -> frozenset[str]:
    declared = public.get("alg")
    if kty == "RSA":
        wanted = frozenset({declared}) if declared else _RSA_ALGORITHMS
        return wanted & _RSA_ALGORITHMS
    curve_alg = _CURVE_ALGORITHM.get(str(public.get("crv")))
    if curve_alg is None or (declared and declared != curve_alg):
        return frozenset()
    return frozenset({curve_alg})


def import_public_key(jwk: dict[str, Any]) -> VerificationKey | None:
    """The verification key a published JWK stands for, or None if unusable."""
    kty = jwk.get("kty")
    if jwk.get("use", "sig") != "sig" or kty not in ("EC", "OKP", "RSA"):
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    public = {
        name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS
    }
    public.pop("key_ops", None)
    algorithms = _algorithms(str(kty), public)
    if not algorithms:
        return None
    try:
        key: Key
        if kty == "EC":
            key = ECKey.import_key(public)
        elif kty == "OKP":
            key = OKPKey.import_key(public)
        else:
            key = RSAKey.import_key(public)
    except (JoseError, ValueError, TypeError):
        return None
    if isinstance(key, RSAKey) and key.public_key.key_size < _MIN_RSA_BITS:
        return None
    return VerificationKey(key, algorithms)
