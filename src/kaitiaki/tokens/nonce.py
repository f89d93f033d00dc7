"""Stateless DPoP server nonces (RFC 9449 §8): a timestamp and its HMAC.

Every replica given the same secret accepts the others' nonces; without a
configured secret each process draws its own at start-up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["DpopNonces"]

_MAC_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DpopNonces:
    """Issues nonces and accepts them for ``lifetime`` seconds."""

    def __init__(self, secret: bytes | None, lifetime: int) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._lifetime = lifetime

    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self._secret, stamp, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, now: int) -> str:
        stamp = now.to_bytes(8, "big")
        return _b64(stamp + self._mac(stamp))

    def accepts(self, nonce: object, now: int) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return False
        stamp, mac = raw[:8], raw[8:]
        if len(stamp) != 8 or not hmac.compare_digest(mac, self._mac(stamp)):
            return False
        issued = int.from_bytes(stamp, "big")
        return issued <= now + 5 and now - issued <= self._lifetime
