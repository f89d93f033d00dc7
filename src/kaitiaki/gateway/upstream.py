"""The upstream hop: an allow-list of headers out, a deny-list of headers back.

Only headers the upstream needs to serve a FHIR request are forwarded; the
caller's ``Authorization``, cookies and any forwarding header never are.
Instead the gateway states who the caller is in ``Kaitiaki-*`` headers that
only it can set (a client sending them is not forwarded either).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from kaitiaki.bounded import read_decoded
from kaitiaki.errors import UpstreamFailed

__all__ = [
    "HttpUpstream",
    "Upstream",
    "UpstreamReply",
    "forward",
    "kept_reply_headers",
    "reply_too_large",
]

_FORWARDED = (
    "accept",
    "content-type",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "prefer",
)
_DROPPED_REPLY = frozenset(
    {
        "set-cookie",
        "server",
        "x-powered-by",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "proxy-authenticate",
        "trailer",
        "upgrade",
        "date",
        "via",
    }
)
MAX_REPLY_BYTES = 32 * 1_048_576


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def reply_too_large() -> UpstreamFailed:
    """The refusal for a reply past :data:`MAX_REPLY_BYTES`, however it came."""
    return UpstreamFailed(
        "The upstream reply was too large.", detail="upstream_too_large"
    )


class Upstream(Protocol):
    """Where the gateway sends a request it has admitted: over HTTP to
    another service (:class:`HttpUpstream`), or to an ASGI application in
    the same process (:class:`kaitiaki.gateway.inprocess.AsgiUpstream`)."""

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float,
    ) -> UpstreamReply:
        """The whole reply, decoded; any failure to get one is
        :class:`~kaitiaki.errors.UpstreamFailed` (502)."""
        ...


class HttpUpstream:
    """The upstream over HTTP, through the gateway's pooled aiohttp client."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float,
    ) -> UpstreamReply:
        return await forward(self.session, method, url, headers, body, timeout=timeout)


def kept_reply_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A reply's headers by lower-case name, without those that never reach
    the client (hop-by-hop, among them any the reply's ``Connection`` names;
    cookies; server and framework banners)."""
    lowered = [(name.lower(), value) for name, value in headers]
    named = {
        option.strip().lower()
        for name, value in lowered
        if name == "connection"
        for option in value.split(",")
    }
    return [(n, v) for n, v in lowered if n not in _DROPPED_REPLY and n not in named]


def outbound_headers(
    headers: dict[str, list[str]], identity: dict[str, str]
) -> dict[str, str]:
    chosen = {name: headers[name][0] for name in _FORWARDED if name in headers}
    chosen.update(identity)
    return chosen


async def forward(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    timeout: float,
) -> UpstreamReply:
    """Send one request upstream; any transport failure becomes a 502."""
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
            # Decoded here, so that a coding cut short is not a whole body.
            auto_decompress=False,
        ) as response:
            payload = await read_decoded(response, MAX_REPLY_BYTES)
            if len(payload) > MAX_REPLY_BYTES:
                raise reply_too_large()
            kept = kept_reply_headers(response.headers.items())
            return UpstreamReply(response.status, kept, payload)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamFailed(
            "The upstream service is unavailable.", detail="upstream_unreachable"
        ) from exc
