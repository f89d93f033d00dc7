"""A JWKS cache for one issuer: discovered, bounded, single-flight, fail closed.

* Metadata comes from ``{issuer}/.well-known/openid-configuration`` and its
  ``issuer`` must equal the configured one; the ``jwks_uri`` must be https
  (or http only when the issuer itself is, as in development).
* Keys live as long as the response's cache headers say (``max-age`` minus
  ``Age``, ``Expires``; ``no-store``/``no-cache`` mean the lower bound),
  clamped to ``jwks_min_refresh_seconds`` .. ``jwks_max_age_seconds``.
* An unknown ``kid`` triggers at most one refetch per cool-down, shared by
  every concurrent caller (single flight).
* If a fetch fails, the last good keys keep serving for a bounded grace
  period, each use counted in ``stats.stale_served`` and logged as an alert;
  after that every lookup fails closed with a 503. A failed or empty fetch
  never replaces, adds or relaxes any key: trust is never widened on error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from kaitiaki.errors import DependencyUnavailable
from kaitiaki.settings import AuthSettings
from kaitiaki.strictjson import StrictJSONError
from kaitiaki.tokens.keys import VerificationKey, import_public_key
from kaitiaki.tokens.metadata import check_endpoint, discover, fetch_json

__all__ = ["JwksCache", "JwksStats", "VerificationKey", "lifetime", "parse_keys"]

logger = logging.getLogger("kaitiaki.tokens.jwks")
alerts = logging.getLogger("kaitiaki.alerts")

_MAX_KEYS = 64
_FETCH_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError, StrictJSONError)


@dataclass(slots=True)
class JwksStats:
    """Counters an operator can alert on."""

    fetches: int = 0
    failures: int = 0
    stale_served: int = 0


def _directives(cache_control: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        found[name] = value.strip('"')
    return found


def lifetime(headers: Any, lower: int, upper: int) -> int:
    """Seconds a response may be reused, from its cache headers, clamped."""
    directives = _directives(headers.get("Cache-Control") or "")
    if "no-store" in directives or "no-cache" in directives:
        return lower
    seconds: float | None = None
    max_age = directives.get("max-age", "")
    if max_age.isdigit():
        age = headers.get("Age") or "0"
        seconds = int(max_age) - (int(age) if age.isdigit() else 0)
    elif headers.get("Expires") and headers.get("Date"):
        try:
            expires = parsedate_to_datetime(headers["Expires"])
            date = parsedate_to_datetime(headers["Date"])
            seconds = (expires - date).total_seconds()
        except (TypeError, ValueError):
            seconds = None
    if seconds is None:
        return upper
    return int(min(max(seconds, lower), upper))


def parse_keys(document: dict[str, Any]) -> dict[str, VerificationKey]:
    """The usable signing keys of a JWKS document, by ``kid``."""
    entries = document.get("keys")
    if not isinstance(entries, list) or len(entries) > _MAX_KEYS:
        raise ValueError("keys missing or too many")
    keys: dict[str, VerificationKey] = {}
    for jwk in entries:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk["kid"] in keys:
            raise ValueError("duplicate kid")
        imported = import_public_key(jwk)
        if imported is not None:
            keys[jwk["kid"]] = imported
    if not keys:
        raise ValueError("no usable signing key")
    return keys


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
        # When a kid missing from fresh keys last caused a fetch, and how many
        # fetches have started (a caller that waited behind one uses its result).
        self._last_unknown: float | None = None
        self._attempts = 0
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.stats = JwksStats()

    @property
    def fetch_failures(self) -> int:
        return self.stats.failures

    @property
    def fetch_count(self) -> int:
        return self.stats.fetches

    async def get(self, kid: str) -> VerificationKey | None:
        """The key for ``kid``; a ``kid`` missing from fresh keys (a rotation,
        or a forged token) refetches at once, but only once per cool-down."""
        now = self._clock()
        fresh = now < self._expires_at
        if fresh and kid in self._keys:
            return self._keys[kid]
        # A fetch already in flight is waited for when there is no key for
        # ``kid`` at all (a cold start under load, a key rotation): those
        # callers get its result instead of a refusal. A caller whose key is
        # known but past its lifetime does not wait: the last good key serves
        # within the grace period, so a hanging issuer stalls nobody.
        waiting = self._lock.locked() and kid not in self._keys
        # Unknown while the keys are fresh: the issuer may have rotated since
        # the last fetch, however recent, so the first such kid fetches now;
        # the cool-down then spaces fetches that unknown kids cause, so a
        # storm of forged kids costs one fetch per cool-down.
        unknown = fresh and kid not in self._keys
        if unknown:
            due = self._cooled(self._last_unknown, now)
        else:
            due = self._cooled(self._last_attempt, now)
        if due or waiting:
            await self._refresh(unknown=unknown, seen=self._attempts)
        now = self._clock()
        self._fail_if_stale(now)
        found = self._keys.get(kid)
        if found is not None and now >= self._expires_at:
            self.stats.stale_served += 1
            alerts.warning(
                "jwks_stale: serving last good keys of %s, %d s past expiry",
                self._settings.issuer,
                int(now - self._expires_at),
            )
        return found

    def _cooled(self, last: float | None, now: float) -> bool:
        return last is None or now - last >= self._settings.jwks_min_refresh_seconds

    def _fail_if_stale(self, now: float) -> None:
        grace = self._settings.jwks_stale_grace_seconds
        if self._fetched_at is None or now > self._expires_at + grace:
            raise DependencyUnavailable(
                "The token issuer's keys are unavailable; try again later.",
                detail="jwks_unavailable",
                headers={"Retry-After": "30"},
            )

    async def _refresh(self, *, unknown: bool, seen: int) -> None:
        async with self._lock:
            # Callers queued behind one fetch share its result (single flight).
            if self._attempts != seen:
                return
            now = self._clock()
            if unknown:
                if not self._cooled(self._last_unknown, now):
                    return
                self._last_unknown = now
            elif not self._cooled(self._last_attempt, now):
                return
            self._attempts += 1
            self._last_attempt = now
            try:
                keys, seconds = await self._fetch()
            except _FETCH_ERRORS as exc:
                self.stats.failures += 1
                alerts.warning(
                    "jwks_fetch_failed: %s (%s); keeping the last good keys",
                    self._settings.issuer,
                    type(exc).__name__,
                )
                if self._on_fetch_failure is not None:
                    self._on_fetch_failure(type(exc).__name__)
                return
            self.stats.fetches += 1
            self._keys = keys
            self._fetched_at = now
            self._expires_at = now + seconds

    async def _jwks_uri(self) -> str:
        if self._settings.jwks_uri:
            return self._settings.jwks_uri
        issuer = self._settings.issuer
        metadata = await discover(self._session, issuer)
        return check_endpoint(issuer, metadata.get("jwks_uri"))

    async def _fetch(self) -> tuple[dict[str, VerificationKey], int]:
        document, headers = await fetch_json(self._session, await self._jwks_uri())
        settings = self._settings
        seconds = lifetime(
            headers, settings.jwks_min_refresh_seconds, settings.jwks_max_age_seconds
        )
        return parse_keys(document), seconds
