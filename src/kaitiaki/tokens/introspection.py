"""Opaque access tokens through RFC 7662 introspection, client-authenticated.

* The endpoint is configured, or read from the issuer's metadata
  (``introspection_endpoint``; https unless the issuer itself is http).
* The gateway authenticates as a client: ``client_secret_basic`` with a
  secret given by reference, or ``private_key_jwt`` with an owner-only key.
* ``active`` must be ``true``; ``iss`` (when present) must be the issuer,
  ``aud`` must name the audience (unless ``require_audience`` is off), and
  the time rules of JWT access tokens apply (``exp`` required).
* Results, active or not, are cached under a hash of the token (the token
  itself is never kept) for at most ``cache_seconds`` and never past the
  token's ``exp``: a revoked token is refused at most ``cache_seconds`` later.
* Concurrent requests with the same token share one call (single flight),
  and at most ``max_concurrent_calls`` calls are in flight at once.
* Any failure to get an answer is a 503: the gateway fails closed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from joserfc.jwk import Key

from kaitiaki.errors import ConfigError, DependencyUnavailable
from kaitiaki.issuer.client import build_client_assertion
from kaitiaki.issuer.keys import load_private_key
from kaitiaki.settings import AuthSettings, IntrospectionSettings
from kaitiaki.strictjson import StrictJSONError
from kaitiaki.tokens.claims import check_audience, check_times, principal_from
from kaitiaki.tokens.compact import refuse
from kaitiaki.tokens.metadata import check_endpoint, discover, read_json
from kaitiaki.tokens.principal import Principal
from kaitiaki.tokens.secretref import SecretSource, resolve_secret

__all__ = ["Introspector"]

logger = logging.getLogger("kaitiaki.tokens.introspection")

_MAX_RESPONSE_BYTES = 64 * 1024
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_TOKEN_TYPES = frozenset({"access_token", "bearer", "dpop", "n_a"})
_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError, StrictJSONError)


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "The token issuer cannot be asked about the access token; try again later.",
        detail="introspection_unavailable",
        headers={"Retry-After": "5"},
    )


class Introspector:
    """Asks the issuer about opaque tokens, and remembers the answers briefly."""

    def __init__(
        self,
        auth: AuthSettings,
        session: aiohttp.ClientSession,
        environ: SecretSource,
    ) -> None:
        if auth.introspection is None:
            raise ConfigError("auth.introspection: not configured")
        self._auth = auth
        self._settings: IntrospectionSettings = auth.introspection
        self._session = session
        self._endpoint = self._settings.endpoint
        self._secret: str | None = None
        self._key: Key | None = None
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        # A flood of made-up opaque tokens must not become a flood at the issuer.
        self._calls = asyncio.Semaphore(self._settings.max_concurrent_calls)
        if self._settings.client_secret:
            self._secret = resolve_secret(
                self._settings.client_secret,
                environ,
                setting="auth.introspection.client_secret",
            )
        if self._settings.auth_method == "private_key_jwt":
            self._key = load_private_key(Path(str(self._settings.private_key_path)))
        self.calls = 0

    async def principal(self, token: str, now: int) -> Principal:
        """The principal for an opaque ``token``; refuse inactive tokens."""
        digest = hashlib.sha256(token.encode("ascii")).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return self._active(cached[1])
        answer = await self._ask_once(digest, token, now)
        principal = self._check(answer, now)
        until = now + self._settings.cache_seconds
        if principal is not None:
            until = min(until, principal.expires_at)
        self._remember(digest, until, principal)
        return self._active(principal)

    async def _ask_once(self, digest: str, token: str, now: int) -> dict[str, Any]:
        """Concurrent requests with the same token share one call (single flight)."""
        running = self._inflight.get(digest)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._ask(token, now))
        self._inflight[digest] = task
        try:
            return await task
        finally:
            self._inflight.pop(digest, None)

    @staticmethod
    def _active(principal: Principal | None) -> Principal:
        if principal is None:
            raise refuse("token_inactive")
        return principal

    def _remember(self, digest: str, until: float, value: Principal | None) -> None:
        if self._settings.cache_seconds == 0:
            return
        self._cache[digest] = (until, value)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._settings.max_cache_entries:
            self._cache.popitem(last=False)

    def _check(self, answer: dict[str, Any], now: int) -> Principal | None:
        if answer.get("active") is not True:
            return None
        if "iss" in answer and answer["iss"] != self._auth.issuer:
            raise refuse("iss_mismatch")
        if self._settings.require_audience or "aud" in answer:
            check_audience(answer, self._auth)
        token_type = answer.get("token_type", "access_token")
        if not isinstance(token_type, str) or token_type.lower() not in _TOKEN_TYPES:
            raise refuse("token_type_not_access")
        expires = check_times(answer, self._auth, now, require_iat=False)
        return principal_from(answer, self._auth, expires, "opaque")

    async def _endpoint_url(self) -> str:
        if self._endpoint is None:
            issuer = self._auth.issuer
            metadata = await discover(self._session, issuer)
            self._endpoint = check_endpoint(
                issuer, metadata.get("introspection_endpoint")
            )
        return self._endpoint

    def _client_auth(self, form: dict[str, str], now: int) -> dict[str, str]:
        client_id = self._settings.client_id
        if self._key is not None:
            form["client_id"] = client_id
            form["client_assertion_type"] = _ASSERTION_TYPE
            form["client_assertion"] = build_client_assertion(
                self._key,
                client_id,
                self._auth.issuer,
                now=now,
                jti=secrets.token_urlsafe(24),
            )
            return {}
        pair = f"{quote(client_id, safe='')}:{quote(str(self._secret), safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    async def _ask(self, token: str, now: int) -> dict[str, Any]:
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            url = await self._endpoint_url()
            headers = {"Accept": "application/json", **self._client_auth(form, now)}
            self.calls += 1
            # The timeout covers waiting for a free call slot too.
            async with (
                asyncio.timeout(self._settings.timeout_seconds),
                self._calls,
                self._session.post(
                    url,
                    data=form,
                    headers=headers,
                    allow_redirects=False,
                    auto_decompress=False,
                ) as resp,
            ):
                return await read_json(resp, _MAX_RESPONSE_BYTES)
        except _ERRORS as exc:
            logger.warning("introspection failed: %s", type(exc).__name__)
            raise _unavailable() from exc
