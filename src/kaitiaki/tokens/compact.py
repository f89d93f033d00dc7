"""Strict reading of a compact JWS, shared by access tokens and DPoP proofs.

The size and the shape are checked before any base64 decoding; each segment
must be canonical base64url (no padding, no stray bits), and header and
payload must be strict JSON objects (no duplicate members, bounded depth).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any

from kaitiaki.errors import InvalidToken
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = ["CompactJws", "decode_object", "looks_like_jws", "refuse", "split_compact"]

_COMPACT = re.compile(r"[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_MAX_DEPTH = 16


def refuse(detail: str) -> InvalidToken:
    """The one refusal for a bad token; ``detail`` goes to the audit trail only."""
    return InvalidToken("The access token is not valid.", detail=detail)


def looks_like_jws(token: str) -> bool:
    """A JWS in compact form: three segments, a header that starts ``{"``.

    This is how the gateway tells a JWT from an opaque token: an opaque
    token is anything else. The shape alone decides; a token that looks like
    a JWT and fails verification is never retried through introspection.
    """
    return token.count(".") == 2 and token.startswith("eyJ")


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# Low bits the last character may not set, by segment length modulo 4.
_STRAY_BITS = {0: 0, 2: 0x0F, 3: 0x03}


def _b64decode(segment: str) -> bytes:
    """Canonical base64url only: one spelling per byte string (no stray bits)."""
    stray = _STRAY_BITS.get(len(segment) % 4)
    if stray is None or (segment and _ALPHABET.index(segment[-1]) & stray):
        raise refuse("token_bad_base64")
    # The shape regex already limited the text to the base64url alphabet.
    padded = segment.encode("ascii").translate(_TO_STANDARD) + b"=" * (
        -len(segment) % 4
    )
    try:
        return binascii.a2b_base64(padded)
    except (binascii.Error, ValueError) as exc:
        raise refuse("token_bad_base64") from exc


def decode_object(segment: str) -> dict[str, Any]:
    """A base64url segment holding one strict JSON object."""
    try:
        value = loads_strict(_b64decode(segment), max_depth=_MAX_DEPTH)
    except StrictJSONError as exc:
        raise refuse(f"token_{exc.reason}") from exc
    if not isinstance(value, dict):
        raise refuse("token_not_object")
    return value


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A compact JWS split once: what is signed, the signature, the payload."""

    header: dict[str, Any]
    payload_segment: str
    signing_input: bytes
    signature: bytes

    def payload(self) -> dict[str, Any]:
        """The payload object; read only after the signature verified."""
        return decode_object(self.payload_segment)


def split_compact(
    token: str, *, max_bytes: int, known_header: dict[str, Any] | None = None
) -> CompactJws:
    """Split and decode the header of ``token``; refuse anything malformed.

    ``known_header`` is the already checked header of this exact header
    segment (see :class:`kaitiaki.tokens.jwt.JwtVerifier`), not decoded again.
    """
    if len(token) > max_bytes:
        raise refuse("token_too_large")
    if not _COMPACT.fullmatch(token):
        raise refuse("token_not_compact_jws")
    head, payload, signature = token.split(".")
    return CompactJws(
        header=decode_object(head) if known_header is None else known_header,
        payload_segment=payload,
        signing_input=f"{head}.{payload}".encode("ascii"),
        signature=_b64decode(signature),
    )
