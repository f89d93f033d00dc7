"""DPoP proofs (RFC 9449) checked against the request and the access token.

A proof is a compact JWS with ``typ: dpop+jwt``, an allowed asymmetric
``alg`` fixed by the public ``jwk`` in its header (private members refused),
and claims ``jti``, ``htm`` (the request method), ``htu`` (the request URL
built from the gateway's public base, compared without query and fragment
after scheme/host/port normalisation), ``iat`` within the freshness window,
``ath`` (base64url SHA-256 of the access token) and, when required, a
server ``nonce``. The key's RFC 7638 thumbprint must equal the token's
``cnf.jkt``. Replay of a ``jti`` is refused by the injected replay cache.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kaitiaki.errors import BadRequest, InvalidDpopProof, InvalidToken
from kaitiaki.request import canonical_path
from kaitiaki.settings import DpopSettings
from kaitiaki.tokens.compact import CompactJws, split_compact
from kaitiaki.tokens.keys import VerificationKey, import_public_key

__all__ = [
    "DpopProof",
    "ProofKeys",
    "access_token_hash",
    "canonical_url",
    "verify_proof",
]

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_FORBIDDEN_HEADERS = ("crit", "jku", "x5u", "x5c")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class DpopProof:
    """A proof that verified: its key thumbprint, ``jti`` and ``nonce``."""

    jkt: str
    jti: str
    nonce: object


def _refuse(detail: str) -> InvalidDpopProof:
    return InvalidDpopProof("The DPoP proof is not valid.", detail=detail)


def access_token_hash(token: str) -> str:
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def canonical_url(url: str) -> str | None:
    """Scheme and host lower-cased, default port dropped, path by the path rule;
    query and fragment ignored. None when the URL is not usable."""
    try:
        parts = urlsplit(url)
        port = parts.port
        path = canonical_path(parts.path.encode("ascii") or b"/", max_bytes=4096)
    except (ValueError, UnicodeEncodeError, BadRequest):
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}"


def _proof_key(header: dict[str, Any], settings: DpopSettings) -> VerificationKey:
    if str(header.get("typ", "")).lower() != "dpop+jwt":
        raise _refuse("dpop_typ")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.algorithms:
        raise _refuse("dpop_alg")
    if any(name in header for name in _FORBIDDEN_HEADERS):
        raise _refuse("dpop_header")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & set(jwk):
        raise _refuse("dpop_jwk")
    key = import_public_key(jwk)
    if key is None or alg not in key.algorithms:
        raise _refuse("dpop_jwk")
    return key


def _check_claims(
    claims: dict[str, Any],
    settings: DpopSettings,
    *,
    method: str,
    url: str,
    access_token: str | None,
    now: int,
    leeway: int,
) -> None:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
        raise _refuse("dpop_jti")
    if claims.get("htm") != method:
        raise _refuse("dpop_htm")
    htu = claims.get("htu")
    if not isinstance(htu, str) or canonical_url(htu) != canonical_url(url):
        raise _refuse("dpop_htu")
    issued = claims.get("iat")
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        raise _refuse("dpop_iat")
    if issued > now + leeway or issued + settings.max_age_seconds + leeway < now:
        raise _refuse("dpop_iat_window")
    if access_token is None:  # at a token endpoint: no token to bind yet
        return
    ath = claims.get("ath")
    if not isinstance(ath, str) or not hmac.compare_digest(
        ath, access_token_hash(access_token)
    ):
        raise _refuse("dpop_ath")


class ProofKeys:
    """The keys of proof headers already seen in a verified proof.

    A client sends the same header segment (``typ``, ``alg``, ``jwk``) with
    every proof, so the imported key and its thumbprint are kept under the
    exact segment text once a proof with it has fully verified. Bounded
    (cleared when full); forgeries never add entries.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._known: dict[str, tuple[dict[str, Any], VerificationKey, str]] = {}
        self._max = max_entries

    def get(self, segment: str) -> tuple[dict[str, Any], VerificationKey, str] | None:
        return self._known.get(segment)

    def remember(
        self, segment: str, header: dict[str, Any], key: VerificationKey, jkt: str
    ) -> None:
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[segment] = (header, key, jkt)


def _split(
    proof: str, settings: DpopSettings, known: ProofKeys | None
) -> tuple[CompactJws, VerificationKey, str | None]:
    seen = known.get(proof.partition(".")[0]) if known is not None else None
    try:
        jws = split_compact(
            proof,
            max_bytes=settings.max_proof_bytes,
            known_header=seen[0] if seen else None,
        )
    except InvalidToken as exc:
        raise _refuse("dpop_" + exc.detail) from exc
    if seen is not None:
        return jws, seen[1], seen[2]
    return jws, _proof_key(jws.header, settings), None


def verify_proof(
    proof: str,
    settings: DpopSettings,
    *,
    method: str,
    url: str,
    access_token: str | None,
    now: int,
    leeway: int,
    known: ProofKeys | None = None,
) -> DpopProof:
    """Verify ``proof`` for this request and token; raise on any fault.

    ``access_token`` is None only where a token is being requested (the
    issuer's token endpoint); a resource request always binds ``ath``.
    """
    jws, key, jkt = _split(proof, settings, known)
    if not key.verify(jws.header["alg"], jws.signing_input, jws.signature):
        raise _refuse("dpop_signature")
    try:
        claims = jws.payload()
    except InvalidToken as exc:
        raise _refuse("dpop_" + exc.detail) from exc
    _check_claims(
        claims,
        settings,
        method=method,
        url=url,
        access_token=access_token,
        now=now,
        leeway=leeway,
    )
    if jkt is None:
        jkt = key.key.thumbprint()
        if known is not None:
            known.remember(proof.partition(".")[0], jws.header, key, jkt)
    return DpopProof(jkt=jkt, jti=claims["jti"], nonce=claims.get("nonce"))
