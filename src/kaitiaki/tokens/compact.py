"""Strict reading of a compact JWS, shared by access tokens and DPoP proofs.

The size and the shape are checked before any base64 decoding; each segment
must be canonical base64url (no padding, no stray bits), and header and
payload must be strict JSON objects (no duplicate members, bounded depth).
"""

from __future__ import annotations

import base64
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


def _b64decode(segment: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise refuse("token_bad_base64") from exc
    # Two spellings of the same bytes (stray low bits) are refused.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode():
        raise refuse("token_bad_base64")
    return raw


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


def split_compact(token: str, *, max_bytes: int) -> CompactJws:
    """Split and decode the header of ``token``; refuse anything malformed."""
    if len(token) > max_bytes:
        raise refuse("token_too_large")
    if not _COMPACT.fullmatch(token):
        raise refuse("token_not_compact_jws")
    head, payload, signature = token.split(".")
    return CompactJws(
        header=decode_object(head),
        payload_segment=payload,
        signing_input=f"{head}.{payload}".encode("ascii"),
        signature=_b64decode(signature),
    )
