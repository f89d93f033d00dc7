"""Access-token verification cost per algorithm, beside the bare signature check.

Run: ``.venv/bin/python bench/jwt_bench.py [--rounds N]``. Everything runs in
this process (no network): the key cache is warm, as it is on the hot path.
Reported per algorithm, in µs per token: Kaitiaki's full verification
(shape, header, key lookup, signature, claims), the bare ``cryptography``
verify of the same signature, their difference, and the same full pipeline
with the signature check replaced by a no-op: what the library and the
gateway add beyond the signature check, measured directly (the difference
of two noisy numbers is itself noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from kaitiaki.settings import AuthSettings, DpopSettings
from kaitiaki.tokens.dpop import ProofKeys, verify_proof
from kaitiaki.tokens.jwt import JwtVerifier
from kaitiaki.tokens.keys import VerificationKey, import_public_key

ISSUER = "https://issuer.bench"
AUDIENCE = "https://gateway.bench/fhir"
REPEATS = 5


class WarmKeys:
    """Stands in for JwksCache with every key already fetched."""

    def __init__(self, keys: dict[str, VerificationKey]) -> None:
        self._keys = keys

    async def get(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bare_verifier(alg: str, key: Any, token: str) -> Callable[[], None]:
    head, payload, signature = token.split(".")
    message = f"{head}.{payload}".encode()
    raw = _b64decode(signature)
    # The fastest form of the public key for OpenSSL: loaded from DER.
    public = load_der_public_key(
        key.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    if alg.startswith("ES"):
        size = len(raw) // 2
        der = encode_dss_signature(
            int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
        )
        digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        return lambda: public.verify(der, message, ec.ECDSA(digest))
    if alg == "EdDSA":
        return lambda: public.verify(raw, message)
    if alg == "RS256":
        return lambda: public.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return lambda: public.verify(raw, message, pss, hashes.SHA256())


def _key(alg: str) -> Any:
    if alg == "ES256":
        return ECKey.generate_key("P-256", auto_kid=True)
    if alg == "ES384":
        return ECKey.generate_key("P-384", auto_kid=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", auto_kid=True)
    return RSAKey.generate_key(2048, auto_kid=True)


def _measure(call: Callable[[], object], rounds: int) -> float:
    for _ in range(min(rounds, 200)):
        call()
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - started) / rounds * 1e6


def _measure_async(verifier: JwtVerifier, token: str, now: int, rounds: int) -> float:
    """Tokens verified one after another inside one coroutine, as the gateway
    does: no event-loop round trip per token is counted."""

    async def run() -> float:
        for _ in range(min(rounds, 200)):
            await verifier.verify(token, now)
        started = time.perf_counter()
        for _ in range(rounds):
            await verifier.verify(token, now)
        return (time.perf_counter() - started) / rounds * 1e6

    return asyncio.run(run())


def bench(alg: str, rounds: int) -> dict[str, float | str]:
    key = _key(alg)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "c",
        "client_id": "c",
        "scope": "system/*.rs",
        "jti": "j",
        "iat": now,
        "exp": now + 300,
    }
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    token = jwt.encode(header, claims, key, algorithms=[alg])
    imported = import_public_key({**key.as_dict(private=False), "alg": alg})
    if imported is None:
        raise SystemExit(f"cannot import {alg} key")
    # The verified-token memo is off for the full check: every call verifies
    # the signature. The same token again with the memo on is the last column.
    settings = AuthSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=(alg,),
        allow_rs256=True,
        verified_token_cache=0,
    )
    verifier = JwtVerifier(settings, WarmKeys({str(key.kid): imported}))
    memo = JwtVerifier(
        settings.model_copy(update={"verified_token_cache": 100}),
        WarmKeys({str(key.kid): imported}),
    )
    # The same pipeline with the signature check replaced by a no-op: every
    # other step still runs, so this is the overhead measured directly.
    unsigned = VerificationKey(imported.key, {alg: lambda message, signature: None})
    checks_only = JwtVerifier(settings, WarmKeys({str(key.kid): unsigned}))
    bare_call = _bare_verifier(alg, key, token)
    # Interleaved repeats, best of each: the machine is shared and noisy.
    fulls, bares, others, remembered = [], [], [], []
    for _ in range(REPEATS):
        fulls.append(_measure_async(verifier, token, now, rounds))
        bares.append(_measure(bare_call, rounds))
        others.append(_measure_async(checks_only, token, now, rounds))
        remembered.append(_measure_async(memo, token, now, rounds))
    gateway, bare = min(fulls), min(bares)
    return {
        "alg": alg,
        "kaitiaki_us": gateway,
        "bare_us": bare,
        "overhead_us": gateway - bare,
        "checks_only_us": min(others),
        "remembered_us": min(remembered),
    }


def bench_dpop(rounds: int) -> dict[str, float | str]:
    """An ES256 DPoP proof checked for one request, key remembered as in the
    gateway, beside the bare verify of its signature."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    now = int(time.time())
    url, token = "https://gateway.bench/fhir/Patient", "eyJhbGciOiJFUzI1NiJ9.e30.AA"
    digest = hashlib.sha256(token.encode()).digest()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {
        "jti": "bench-proof-0001",
        "htm": "GET",
        "htu": url,
        "iat": now,
        "ath": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
    }
    proof = jwt.encode(header, claims, key, algorithms=["ES256"])
    settings, known = DpopSettings(), ProofKeys()

    def check_with(keys: ProofKeys) -> object:
        return verify_proof(
            proof,
            settings,
            method="GET",
            url=url,
            access_token=token,
            now=now,
            leeway=30,
            known=keys,
        )

    def check() -> object:
        return check_with(known)

    check()  # the header's key is now remembered, as after a client's first call
    segment = proof.partition(".")[0]
    remembered = known.get(segment)
    if remembered is None:
        raise SystemExit("the proof did not verify")
    unsigned = VerificationKey(remembered[1].key, {"ES256": lambda m, s: None})
    checks_only = ProofKeys()
    checks_only.remember(segment, remembered[0], unsigned, remembered[2])

    def check_unsigned() -> object:
        return check_with(checks_only)

    bare_call = _bare_verifier("ES256", key, proof)
    fulls, bares, others = [], [], []
    for _ in range(REPEATS):
        fulls.append(_measure(check, rounds))
        bares.append(_measure(bare_call, rounds))
        others.append(_measure(check_unsigned, rounds))
    full, bare = min(fulls), min(bares)
    return {
        "alg": "DPoP ES256 proof",
        "kaitiaki_us": full,
        "bare_us": bare,
        "overhead_us": full - bare,
        "checks_only_us": min(others),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    rounds = max(100, min(args.rounds, 20000))
    results = [
        bench(alg, rounds) for alg in ("ES256", "ES384", "EdDSA", "PS256", "RS256")
    ]
    results.append(bench_dpop(rounds))
    print(
        "| token | Kaitiaki verify µs | bare cryptography µs | difference µs "
        "| all checks but the signature µs | same token again, memo on µs |"
    )
    print("|---|---|---|---|---|---|")
    for row in results:
        again = row.get("remembered_us")
        print(
            f"| {row['alg']} | {row['kaitiaki_us']:.1f} | {row['bare_us']:.1f} | "
            f"{row['overhead_us']:.1f} | {row['checks_only_us']:.1f} | "
            + ("n/a" if again is None else f"{again:.1f}")
            + " |"
        )
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
