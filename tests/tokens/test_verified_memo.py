"""The verified-token memo: a token's signature is checked once, its claims on
every request; a withdrawn or replaced key, expiry and forgeries behave as
without the memo."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey

from kaitiaki.errors import ExpiredToken, InvalidToken
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.jwt import JwtVerifier
from kaitiaki.tokens.keys import VerificationKey, import_public_key
from tests.tokens.forge import signed

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000
ISSUER, AUDIENCE = "https://as.example", "https://api.example"


class CountingKeys:
    """A key source whose keys count the signatures they check."""

    def __init__(self, key: ECKey) -> None:
        self.checked = 0
        self.keys: dict[str, VerificationKey] = {}
        self.publish(key)

    def publish(self, key: ECKey) -> None:
        imported = import_public_key({**key.as_dict(private=False), "alg": "ES256"})
        assert imported is not None
        check = imported.checks["ES256"]

        def counted(message: bytes, signature: bytes) -> None:
            self.checked += 1
            check(message, signature)

        self.keys[str(key.kid)] = VerificationKey(imported.key, {"ES256": counted})

    async def get(self, kid: str) -> VerificationKey | None:
        return self.keys.get(kid)


def _token(key: ECKey, **changes: Any) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "s",
        "client_id": "c",
        "scope": "system/*.rs",
        "iat": NOW,
        "exp": NOW + 300,
        **changes,
    }
    header = {"alg": "ES256", "typ": "at+jwt", "kid": str(key.kid)}
    return signed(header, claims, key)


def _verifier(size: int = 100) -> tuple[JwtVerifier, CountingKeys, ECKey]:
    key = ECKey.generate_key("P-256", auto_kid=True)
    keys = CountingKeys(key)
    settings = AuthSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=("ES256",),
        verified_token_cache=size,
    )
    return JwtVerifier(settings, keys), keys, key


async def test_a_token_seen_again_is_not_verified_again() -> None:
    verifier, keys, key = _verifier()
    token = _token(key)
    first = await verifier.verify(token, NOW)
    again = await verifier.verify(token, NOW + 1)
    assert keys.checked == 1
    assert (again.client_id, again.scope, again.expires_at) == (
        first.client_id,
        first.scope,
        first.expires_at,
    )


async def test_the_memo_off_verifies_every_time() -> None:
    verifier, keys, key = _verifier(size=0)
    token = _token(key)
    for _ in range(3):
        await verifier.verify(token, NOW)
    assert keys.checked == 3


async def test_a_remembered_token_still_expires() -> None:
    verifier, keys, key = _verifier()
    token = _token(key, exp=NOW + 60)
    await verifier.verify(token, NOW)
    with pytest.raises(ExpiredToken):
        await verifier.verify(token, NOW + 60 + 31)
    # Forgotten once refused: a later call checks the signature again.
    with pytest.raises(ExpiredToken):
        await verifier.verify(token, NOW + 60 + 31)
    assert keys.checked == 2


async def test_a_withdrawn_key_stops_remembered_tokens_at_once() -> None:
    verifier, keys, key = _verifier()
    token = _token(key)
    await verifier.verify(token, NOW)
    keys.keys.clear()  # the issuer's key set no longer has the key
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token, NOW)
    assert refused.value.detail == "kid_unknown"


async def test_a_replaced_key_under_the_same_kid_verifies_again() -> None:
    verifier, keys, key = _verifier()
    token = _token(key)
    await verifier.verify(token, NOW)
    other = ECKey.generate_key("P-256")
    keys.publish(ECKey.import_key({**other.as_dict(), "kid": str(key.kid)}))
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token, NOW)
    assert refused.value.detail == "bad_signature"


async def test_forgeries_are_never_remembered() -> None:
    verifier, keys, key = _verifier()
    token = _token(key)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await verifier.verify(forged, NOW)
    assert keys.checked == 3
    # The genuine token is still checked once, then remembered.
    await verifier.verify(token, NOW)
    await verifier.verify(token, NOW)
    assert keys.checked == 4


async def test_two_requests_forgetting_one_expired_token_are_both_401() -> None:
    """Both see the remembered entry, the key lookup yields, then both find
    it expired: the second must not fail on an entry the first removed."""
    import asyncio

    verifier, keys, key = _verifier()
    token = _token(key, exp=NOW + 60)
    await verifier.verify(token, NOW)
    lookup = keys.get

    async def slow(kid: str) -> VerificationKey | None:
        await asyncio.sleep(0)
        return await lookup(kid)

    keys.get = slow  # type: ignore[method-assign]
    results = await asyncio.gather(
        verifier.verify(token, NOW + 100),
        verifier.verify(token, NOW + 100),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [ExpiredToken, ExpiredToken]


async def test_the_memo_is_bounded() -> None:
    verifier, keys, key = _verifier(size=2)
    tokens = [_token(key, jti=f"t{n}") for n in range(3)]
    for token in tokens:
        await verifier.verify(token, NOW)
    await verifier.verify(tokens[0], NOW)  # evicted first: checked again
    await verifier.verify(tokens[2], NOW)  # still remembered
    assert keys.checked == 4


async def test_an_oversized_token_is_refused_before_hashing() -> None:
    verifier, keys, _ = _verifier()
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify("a" * 9000, NOW)
    assert refused.value.detail == "token_too_large"
    assert keys.checked == 0
