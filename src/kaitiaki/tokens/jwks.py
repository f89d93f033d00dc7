"""A JWKS cache for one issuer: discovered, bounded, single-flight, fail closed.

* Metadata comes from ``{issuer}/.well-known/openid-configuration`` (or the
  RFC 8414 document) and its ``issuer`` must equal the configured one.
* Keys live for the response's ``max-age`` clamped to the configured bounds.
* An unknown ``kid`` triggers at most one refetch per cool-down, shared by
  every concurrent caller.
* If a fetch fails, the last good keys keep serving for a bounded grace
  period; after that every lookup fails closed with a 503.
* Symmetric keys and keys not meant for signatures are never loaded, and
  private members of a published key are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from kaitiaki.errors import DependencyUnavailable
from kaitiaki.settings import AuthSettings
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = ["JwksCache", "VerificationKey"]

logger = logging.getLogger("kaitiaki.tokens.jwks")

_MAX_DOCUMENT_BYTES = 256 * 1024
_MAX_AGE = re.compile(r"max-age=(\d+)")
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_CURVE_ALGORITHM = {
    "P-256": "ES256",
    "P-384": "ES384",
    "P-521": "ES512",
    "Ed25519": "EdDSA",
}
_RSA_ALGORITHMS = frozenset({"RS256", "PS256", "PS384", "PS512"})

Key = ECKey | OKPKey | RSAKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the algorithms it may verify."""

    key: Key
    algorithms: frozenset[str]


def _import_key(jwk: dict[str, Any]) -> VerificationKey | None:
    kty = jwk.get("kty")
    if jwk.get("use", "sig") != "sig" or kty not in ("EC", "OKP", "RSA"):
        return None
    public = {
        name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS
    }
    declared = jwk.get("alg")
    try:
        if kty == "RSA":
            algorithms = frozenset({declared}) if declared else _RSA_ALGORITHMS
            return VerificationKey(
                RSAKey.import_key(public), algorithms & _RSA_ALGORITHMS
            )
        curve_alg = _CURVE_ALGORITHM.get(str(public.get("crv")))
        if curve_alg is None or (declared and declared != curve_alg):
            return None
        key: Key = (ECKey if kty == "EC" else OKPKey).import_key(public)
    except (JoseError, ValueError, TypeError):
        return None
    return VerificationKey(key, frozenset({curve_alg}))


def _max_age(cache_control: str | None) -> int | None:
    match = _MAX_AGE.search(cache_control or "")
    return int(match.group(1)) if match else None


class JwksCache:
    """Public signing keys of one issuer, refreshed on demand."""

    def __init__(
        self,
        settings: AuthSettings,
        session: aiohttp.ClientSession,
        clock: Callable[[], float],
        on_fetch_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock
        self._on_fetch_failure = on_fetch_failure
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetch_failures = 0
        self.fetch_count = 0

    async def get(self, kid: str) -> VerificationKey | None:
        """The key for ``kid``, refetching once per cool-down when unknown."""
        now = self._clock()
        wanted = now >= self._expires_at or kid not in self._keys
        if wanted and self._may_refetch(now):
            await self._refresh()
        self._fail_if_stale(self._clock())
        return self._keys.get(kid)

    def _may_refetch(self, now: float) -> bool:
        last = self._last_attempt
        return last is None or now - last >= self._settings.jwks_min_refresh_seconds

    def _fail_if_stale(self, now: float) -> None:
        fetched = self._fetched_at
        grace = self._settings.jwks_stale_grace_seconds
        if fetched is None or now > self._expires_at + grace:
            raise DependencyUnavailable(
                "The token issuer's keys are unavailable; try again later.",
                detail="jwks_unavailable",
                headers={"Retry-After": "30"},
            )

    async def _refresh(self) -> None:
        async with self._lock:
            # Callers queued behind one fetch share its result (single flight).
            now = self._clock()
            if not self._may_refetch(now):
                return
            self._last_attempt = now
            try:
                keys, max_age = await self._fetch()
            except (
                aiohttp.ClientError,
                TimeoutError,
                ValueError,
                StrictJSONError,
            ) as exc:
                self.fetch_failures += 1
                logger.warning(
                    "JWKS fetch for %s failed: %s",
                    self._settings.issuer,
                    type(exc).__name__,
                )
                if self._on_fetch_failure is not None:
                    self._on_fetch_failure(type(exc).__name__)
                return
            self.fetch_count += 1
            self._keys = keys
            self._fetched_at = now
            lower = self._settings.jwks_min_refresh_seconds
            upper = self._settings.jwks_max_age_seconds
            self._expires_at = now + min(max(max_age or upper, lower), upper)

    async def _get_json(self, url: str) -> tuple[dict[str, Any], str | None]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with self._session.get(
            url, timeout=timeout, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise ValueError(f"status {resp.status}")
            body = await resp.content.read(_MAX_DOCUMENT_BYTES + 1)
            if len(body) > _MAX_DOCUMENT_BYTES:
                raise ValueError("document too large")
            document = loads_strict(body, max_depth=8)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            return document, resp.headers.get("Cache-Control")

    async def _jwks_uri(self) -> str:
        if self._settings.jwks_uri:
            return self._settings.jwks_uri
        issuer = self._settings.issuer.rstrip("/")
        metadata, _ = await self._get_json(f"{issuer}/.well-known/openid-configuration")
        if metadata.get("issuer") != self._settings.issuer:
            raise ValueError("metadata issuer does not match")
        uri = metadata.get("jwks_uri")
        if not isinstance(uri, str):
            raise ValueError("metadata has no jwks_uri")
        return uri

    async def _fetch(self) -> tuple[dict[str, VerificationKey], int | None]:
        document, cache_control = await self._get_json(await self._jwks_uri())
        keys: dict[str, VerificationKey] = {}
        for jwk in document.get("keys", []):
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            imported = _import_key(jwk)
            if imported is not None and imported.algorithms:
                keys[jwk["kid"]] = imported
        return keys, _max_age(cache_control)
