"""Small JSON documents from the issuer: metadata, JWKS, introspection answers.

Bounded in size, strict JSON objects only, no redirects followed; endpoints
named in metadata must be https unless the issuer itself is http.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kaitiaki.bounded import read_decoded
from kaitiaki.strictjson import loads_strict

__all__ = ["check_endpoint", "discover", "fetch_json", "read_json"]

_MAX_DOCUMENT_BYTES = 256 * 1024


async def read_json(
    resp: aiohttp.ClientResponse, max_bytes: int = _MAX_DOCUMENT_BYTES
) -> dict[str, Any]:
    """The body of a 200 reply, requested with ``auto_decompress=False``, as
    one strict JSON object, or ValueError (a coding cut short or malformed
    raises :class:`aiohttp.ClientPayloadError`)."""
    if resp.status != 200:
        raise ValueError(f"status {resp.status}")
    body = await read_decoded(resp, max_bytes)
    if len(body) > max_bytes:
        raise ValueError("document too large")
    document = loads_strict(body, max_depth=16)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


async def fetch_json(
    session: aiohttp.ClientSession, url: str
) -> tuple[dict[str, Any], Any]:
    """GET a small JSON object (no redirects); return it and the headers."""
    timeout = aiohttp.ClientTimeout(total=5)
    headers = {"Accept": "application/json"}
    async with session.get(
        url,
        timeout=timeout,
        allow_redirects=False,
        headers=headers,
        auto_decompress=False,
    ) as resp:
        return await read_json(resp), resp.headers


async def discover(session: aiohttp.ClientSession, issuer: str) -> dict[str, Any]:
    """The issuer's OpenID metadata; its ``issuer`` must match exactly."""
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    metadata, _ = await fetch_json(session, url)
    if metadata.get("issuer") != issuer:
        raise ValueError("metadata issuer does not match")
    return metadata


def check_endpoint(issuer: str, url: object) -> str:
    """An endpoint named in metadata: https, or http only for an http issuer."""
    if not isinstance(url, str):
        raise ValueError("endpoint missing")
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" == urlsplit(issuer).scheme):
        raise ValueError("endpoint must use https")
    return url
