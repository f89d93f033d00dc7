"""Envelope encryption with AES-256-GCM, and a keyed blind index.

Each value is encrypted under its own random data key; the data key is
wrapped (AES-GCM) under a key-encryption key from a key ring, whose id is
stored with the value. Rotating the key-encryption key re-wraps data keys
without touching the ciphertext. Additional data binds a value to its row,
so a sealed value copied to another row does not open.

Sealed form: ``k1.<kid>.<wrap nonce>.<wrapped key>.<nonce>.<ciphertext>``,
every part base64url.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kaitiaki.errors import KaitiakiError

__all__ = ["SealError", "blind_index", "open_sealed", "rewrap", "seal", "sealed_kid"]

_VERSION = "k1"
_NONCE_BYTES = 12

KeyLookup = Callable[[str], bytes | None]


class SealError(KaitiakiError):
    """A sealed value cannot be opened: unknown key, damage or the wrong row."""

    code = "seal"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SealError("sealed value is damaged") from exc


def _wrap_aad(kid: str, aad: bytes) -> bytes:
    return b"wrap|" + kid.encode() + b"|" + aad


def _wrap(data_key: bytes, kid: str, kek: bytes, aad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce, AESGCM(kek).encrypt(nonce, data_key, _wrap_aad(kid, aad))


def seal(plaintext: bytes, *, kid: str, kek: bytes, aad: bytes) -> str:
    """Encrypt ``plaintext`` under a fresh data key wrapped by ``kek``."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
    wrap_nonce, wrapped = _wrap(data_key, kid, kek, aad)
    parts = (wrap_nonce, wrapped, nonce, ciphertext)
    return ".".join((_VERSION, kid, *(_b64(part) for part in parts)))


def _split(sealed: str) -> tuple[str, bytes, bytes, bytes, bytes]:
    parts = sealed.split(".")
    if len(parts) != 6 or parts[0] != _VERSION:
        raise SealError("not a sealed value")
    wrap_nonce, wrapped, nonce, ciphertext = (_unb64(part) for part in parts[2:])
    return parts[1], wrap_nonce, wrapped, nonce, ciphertext


def sealed_kid(sealed: str) -> str:
    """The id of the key-encryption key a sealed value needs."""
    return _split(sealed)[0]


def _data_key(sealed: str, keys: KeyLookup, aad: bytes) -> tuple[bytes, bytes, bytes]:
    kid, wrap_nonce, wrapped, nonce, ciphertext = _split(sealed)
    kek = keys(kid)
    if kek is None:
        raise SealError(f"no key {kid} to open a sealed value")
    try:
        data_key = AESGCM(kek).decrypt(wrap_nonce, wrapped, _wrap_aad(kid, aad))
    except InvalidTag as exc:
        raise SealError("sealed value does not open with its key") from exc
    return data_key, nonce, ciphertext


def open_sealed(sealed: str, keys: KeyLookup, *, aad: bytes) -> bytes:
    """Decrypt a value made by :func:`seal`; any fault raises :class:`SealError`."""
    data_key, nonce, ciphertext = _data_key(sealed, keys, aad)
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise SealError("sealed value does not open with its key") from exc


def rewrap(sealed: str, keys: KeyLookup, *, kid: str, kek: bytes, aad: bytes) -> str:
    """The same ciphertext with its data key wrapped under ``kid`` instead."""
    data_key, nonce, ciphertext = _data_key(sealed, keys, aad)
    wrap_nonce, wrapped = _wrap(data_key, kid, kek, aad)
    parts = (wrap_nonce, wrapped, nonce, ciphertext)
    return ".".join((_VERSION, kid, *(_b64(part) for part in parts)))


def blind_index(key: bytes, value: str) -> str:
    """A keyed HMAC-SHA-256 of ``value``: equal values match, nothing reverses."""
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()
    return _b64(digest)
