"""The upstream hop: an allow-list of headers out, a deny-list of headers back.

Only headers the upstream needs to serve a FHIR request are forwarded; the
caller's ``Authorization``, cookies and any forwarding header never are.
Instead the gateway states who the caller is in ``Kaitiaki-*`` headers that
only it can set (a client sending them is not forwarded either).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from kaitiaki.bounded import read_decoded
from kaitiaki.errors import UpstreamFailed

__all__ = ["UpstreamReply", "forward"]

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
                raise UpstreamFailed(
                    "The upstream reply was too large.", detail="upstream_too_large"
                )
            kept = [
                (name.lower(), value)
                for name, value in response.headers.items()
                if name.lower() not in _DROPPED_REPLY
            ]
            return UpstreamReply(response.status, kept, payload)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamFailed(
            "The upstream service is unavailable.", detail="upstream_unreachable"
        ) from exc
