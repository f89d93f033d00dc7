"""Getting an access token from an issuer: discovery, a ``private_key_jwt``
client assertion, and the client credentials grant over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from joserfc import jwt
from joserfc.jwk import Key

from kaitiaki.bounded import read_decoded
from kaitiaki.issuer.assertion import CLIENT_ASSERTION_TYPE
from kaitiaki.issuer.keys import algorithm_for, load_private_key
from kaitiaki.issuer.refusals import TokenRequestFailed
from kaitiaki.strictjson import loads_strict

__all__ = [
    "TokenResponse",
    "build_client_assertion",
    "build_dpop_proof",
    "fetch_token",
    "fetch_token_sync",
]

ASSERTION_LIFETIME = 60
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class TokenResponse:
    """A successful RFC 6749 §5.1 token response."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str

    def __repr__(self) -> str:
        # Keep the token itself out of logs and tracebacks.
        return (
            f"TokenResponse(token_type={self.token_type!r}, "
            f"expires_in={self.expires_in!r}, scope={self.scope!r})"
        )


def build_client_assertion(
    key: Key, client_id: str, audience: str, *, now: int, jti: str
) -> str:
    """A ``private_key_jwt`` client assertion (RFC 7523 §3) signed by ``key``."""
    algorithm = algorithm_for(key)
    header = {"alg": algorithm, "typ": "JWT", "kid": key.kid}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": jti,
    }
    return jwt.encode(header, claims, key, algorithms=[algorithm])


def build_dpop_proof(
    key: Key,
    method: str,
    url: str,
    access_token: str | None = None,
    *,
    now: int,
    jti: str,
) -> str:
    """A DPoP proof (RFC 9449 §4) for one request, signed by ``key``; with an
    access token it carries ``ath``, the hash that binds it to that token."""
    algorithm = algorithm_for(key)
    header = {
        "typ": "dpop+jwt",
        "alg": algorithm,
        "jwk": key.as_dict(private=False),
    }
    claims: dict[str, Any] = {"jti": jti, "htm": method, "htu": url, "iat": now}
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return jwt.encode(header, claims, key, algorithms=[algorithm])


async def _read_json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await read_decoded(response, MAX_RESPONSE_BYTES)
    if len(body) > MAX_RESPONSE_BYTES:
        raise TokenRequestFailed(
            "the issuer's response is too large", error="invalid_response"
        )
    try:
        data = loads_strict(body, max_depth=16)
    except ValueError as exc:
        raise TokenRequestFailed(
            "the issuer did not answer with JSON", error="invalid_response"
        ) from exc
    if not isinstance(data, dict):
        raise TokenRequestFailed(
            "the issuer's answer is not an object", error="invalid_response"
        )
    return data


async def _discover_token_endpoint(
    session: aiohttp.ClientSession, issuer_url: str
) -> str:
    async with session.get(
        f"{issuer_url}/.well-known/openid-configuration", auto_decompress=False
    ) as response:
        metadata = await _read_json(response)
        status = response.status
    if status != 200:
        raise TokenRequestFailed(
            f"discovery answered HTTP {status}", error="invalid_response", status=status
        )
    # RFC 8414 §3.3: the metadata must name the issuer we asked.
    if metadata.get("issuer") != issuer_url:
        raise TokenRequestFailed(
            "discovery names another issuer", error="invalid_response"
        )
    endpoint = metadata.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(
        ("https://", "http://")
    ):
        raise TokenRequestFailed(
            "discovery has no token_endpoint", error="invalid_response"
        )
    return endpoint


def _token_response(data: dict[str, Any], status: int) -> TokenResponse:
    if status != 200:
        error = data.get("error")
        code = (
            error
            if isinstance(error, str) and error.isidentifier()
            else "invalid_response"
        )
        raise TokenRequestFailed(
            f"the issuer refused the token request ({code}, HTTP {status})",
            error=code,
            status=status,
        )
    token, expires_in = data.get("access_token"), data.get("expires_in")
    if not isinstance(token, str) or not isinstance(expires_in, int):
        raise TokenRequestFailed(
            "the token response is incomplete", error="invalid_response"
        )
    return TokenResponse(
        access_token=token,
        token_type=str(data.get("token_type", "")),
        expires_in=expires_in,
        scope=str(data.get("scope", "")),
    )


async def fetch_token(
    issuer_url: str,
    client_id: str,
    key_path: Path,
    *,
    scope: str | None = None,
    resource: str | None = None,
    timeout: float = 10.0,
    dpop_key: Key | None = None,
) -> TokenResponse:
    """Get an access token by the client credentials grant with ``private_key_jwt``;
    with ``dpop_key`` the request carries a DPoP proof, so the token is bound.

    Raises :class:`~kaitiaki.errors.ConfigError` for an unusable key file and
    :class:`TokenRequestFailed` when no token is issued.
    """
    key = load_private_key(Path(key_path))
    issuer_url = issuer_url.rstrip("/")
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            endpoint = await _discover_token_endpoint(session, issuer_url)
            assertion = build_client_assertion(
                key,
                client_id,
                endpoint,
                now=int(time.time()),
                jti=secrets.token_urlsafe(24),
            )
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion,
            }
            if scope is not None:
                form["scope"] = scope
            if resource is not None:
                form["resource"] = resource
            headers = {}
            if dpop_key is not None:
                headers["DPoP"] = build_dpop_proof(
                    dpop_key,
                    "POST",
                    endpoint,
                    now=int(time.time()),
                    jti=secrets.token_urlsafe(24),
                )
            async with session.post(
                endpoint, data=form, headers=headers, auto_decompress=False
            ) as response:
                data = await _read_json(response)
                return _token_response(data, response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenRequestFailed(
            f"cannot reach the issuer at {issuer_url}: {type(exc).__name__}",
            error="unreachable",
        ) from exc


def fetch_token_sync(
    issuer_url: str,
    client_id: str,
    key_path: Path,
    *,
    scope: str | None = None,
    resource: str | None = None,
    timeout: float = 10.0,
    dpop_key: Key | None = None,
) -> TokenResponse:
    """:func:`fetch_token` for synchronous callers (runs its own event loop)."""
    return asyncio.run(
        fetch_token(
            issuer_url,
            client_id,
            key_path,
            scope=scope,
            resource=resource,
            timeout=timeout,
            dpop_key=dpop_key,
        )
    )
