"""Who is calling, from where: the client address and scheme, and address lists.

The client address is the socket peer. Forwarding headers (``Forwarded``,
``X-Forwarded-For``, ``X-Forwarded-Proto``) are read only when that peer is in
``gateway.trusted_proxies``; then the address is the right-most hop that is
not itself a trusted proxy (every hop left of it could have been written by
the client). Anything else in those headers is ignored, never forwarded.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kaitiaki.errors import Blocked
from kaitiaki.settings import Settings
from kaitiaki.waf import check_networks

__all__ = ["EdgePolicy"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FOR = re.compile(r'(?i)(?:^|[;,\s])for\s*=\s*"?([^";,\s]+)"?')
_PROTO = re.compile(r'(?i)(?:^|[;,\s])proto="?(https?)"?')


def _networks(values: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    trusted: tuple[_Network, ...]
    allow: tuple[_Network, ...]
    deny: tuple[_Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgePolicy:
        return cls(
            _networks(settings.gateway.trusted_proxies),
            _networks(settings.waf.allow_networks),
            _networks(settings.waf.deny_networks),
        )

    def _trusted(self, text: str) -> bool:
        ip = _ip(text)
        return ip is not None and any(ip in network for network in self.trusted)

    def client_origin(
        self, peer: str, scheme: str, headers: dict[str, list[str]]
    ) -> tuple[str, str]:
        """(address, scheme) of the client, trusting only configured proxies."""
        if not self.trusted or not self._trusted(peer):
            return peer, scheme
        hops, proto = _forwarded(headers)
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                # An unparseable hop: stop at the last address we can vouch for.
                return peer, scheme
            peer = str(ip)
            if not any(ip in network for network in self.trusted):
                return peer, proto or scheme
        return peer, proto or scheme

    def check_address(self, address: str) -> None:
        """Refuse (403) an address the allow and deny lists keep out."""
        if not check_networks(address, self.allow, self.deny):
            raise Blocked(
                "The request was refused by the traffic filter.",
                detail="address_denied",
            )


def _forwarded(headers: dict[str, list[str]]) -> tuple[list[str], str | None]:
    """The hop addresses (left to right) and the last proxy's scheme."""
    if "forwarded" in headers:
        text = ",".join(headers["forwarded"])
        hops = [m.group(1) for m in _FOR.finditer(text)]
        protos = [m.group(1).lower() for m in _PROTO.finditer(text)]
        return hops, protos[-1] if protos else None
    hops = [
        part.strip()
        for value in headers.get("x-forwarded-for", ())
        for part in value.split(",")
        if part.strip()
    ]
    protos = [
        part.strip().lower()
        for value in headers.get("x-forwarded-proto", ())
        for part in value.split(",")
    ]
    proto = protos[-1] if protos and protos[-1] in ("http", "https") else None
    return hops, proto
