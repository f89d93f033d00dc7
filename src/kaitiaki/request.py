"""The canonical request: built once at the edge, read by every later step.

One documented rule for the path (refuse by default, never "fix up"):

* the request target must be origin-form (start with ``/``) and printable ASCII;
* a percent-encoded unreserved letter, digit, ``-``, ``_`` or ``~`` is decoded;
  any other percent-encoding in the path (``%2F``, ``%5C``, ``%2E``, ``%3B``,
  ``%00``, control characters, non-ASCII bytes, ...) is refused;
* a literal ``\\`` or ``;``, an empty segment (``//`` or a trailing ``/``) and
  the dot segments ``.`` and ``..`` are refused.

Route matching on the result is case-sensitive. The query string is parsed
once into ordered pairs; values must be valid UTF-8 without control characters.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from kaitiaki.errors import BadRequest, HeadersTooLarge, UriTooLong

__all__ = ["CanonicalRequest", "canonical_path", "parse_query"]

_PRINTABLE = re.compile(rb"[\x21-\x7e]*")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DECODABLE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A correlation id is logged as it is, so one that holds an NHI is not "safe".
_NHI_LIKE = re.compile(
    r"(?<![A-Za-z0-9])[A-HJ-NP-Z]{3}[0-9]{2}(?:[0-9]{2}|[A-HJ-NP-Z]{2})(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_CLOSE = {"Connection": "close"}


def _decode_percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    if char not in _DECODABLE:
        raise BadRequest(
            "The request path contains an encoded character that is not accepted.",
            detail="path_encoded_char",
        )
    return char


def canonical_path(raw_path: bytes, *, max_bytes: int) -> str:
    """Apply the path rule to the raw request path (without its query)."""
    if len(raw_path) > max_bytes:
        raise UriTooLong("The request URI is too long.")
    if not raw_path.startswith(b"/") or not _PRINTABLE.fullmatch(raw_path):
        # Not origin-form (absolute, authority or asterisk form): close too.
        raise BadRequest(
            "The request target is not a valid origin-form path.",
            detail="path_form",
            headers=_CLOSE,
        )

    text = _PERCENT.sub(_decode_percent, raw_path.decode("ascii"))
    if "%" in text:
        raise BadRequest(
            "The request path has a malformed percent-encoding.", detail="path_percent"
        )
    if "\\" in text or ";" in text:
        raise BadRequest(
            "The request path contains a character that is not accepted.",
            detail="path_char",
        )

    segments = text[1:].split("/")
    if any(segment in ("", ".", "..") for segment in segments) and text != "/":
        raise BadRequest(
            "The request path has empty or dot segments.", detail="path_segments"
        )
    return text


def parse_query(raw_query: bytes, *, max_bytes: int) -> tuple[tuple[str, str], ...]:
    """Parse the query string once into ordered (name, value) pairs."""
    if not raw_query:
        return ()
    if len(raw_query) > max_bytes:
        raise UriTooLong("The request URI is too long.")
    if not _PRINTABLE.fullmatch(raw_query):
        raise BadRequest("The query string is malformed.", detail="query_form")
    try:
        pairs = parse_qsl(
            raw_query.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=256,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            "The query string is malformed.", detail="query_parse"
        ) from exc
    for name, value in pairs:
        if not name or _CONTROL.search(name) or _CONTROL.search(value):
            raise BadRequest("The query string is malformed.", detail="query_char")
    return tuple(pairs)


def encode_query(pairs: tuple[tuple[str, str], ...]) -> str:
    """Re-encode parsed pairs, so the upstream sees exactly what was checked."""
    return "&".join(
        f"{quote(name, safe='')}={quote(value, safe=',:|$')}" for name, value in pairs
    )


def correlation_id(headers: dict[str, list[str]]) -> str:
    """The caller's correlation id when it is one safe value (the pattern, at
    most 64 characters, no NHI in it), else a new UUID."""
    for name in ("x-correlation-id", "correlation-id"):
        values = headers.get(name, [])
        if len(values) != 1 or not _CORRELATION_ID.fullmatch(values[0]):
            continue
        if not _NHI_LIKE.search(values[0]):
            return values[0]
    return str(uuid.uuid4())


def collect_headers(
    raw: list[tuple[bytes, bytes]], *, max_count: int, max_bytes: int
) -> dict[str, list[str]]:
    """Header lists by lower-case name, refusing too many or too large (431)."""
    if len(raw) > max_count:
        raise HeadersTooLarge("The request has too many header fields.")
    if sum(len(name) + len(value) for name, value in raw) > max_bytes:
        raise HeadersTooLarge("The request header fields are too large.")
    headers: dict[str, list[str]] = {}
    for name, value in raw:
        text = value.decode("latin-1")
        if _CONTROL.search(text.replace("\t", " ")):
            raise BadRequest("A header field value is malformed.", detail="header_char")
        headers.setdefault(name.decode("latin-1").lower(), []).append(text)
    return headers


def check_framing(headers: dict[str, list[str]], http_version: str = "1.1") -> None:
    """Refuse ambiguous message framing that the server parser let through.

    llhttp (the listener's parser) rejects repeated or misplaced transfer
    codings, bad chunks, differing Content-Length values and Content-Length
    beside Transfer-Encoding itself. What it accepts and the gateway still
    refuses: Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1) and any coding but
    a lone ``chunked`` (``gzip, chunked`` is valid HTTP, but nothing here
    would decode the gzip, and two parsers can disagree on it). The
    connection is closed, so that nothing after the request on it is read as
    a new request.
    """
    codings = headers.get("transfer-encoding")
    faulty = codings is not None and (
        "content-length" in headers
        or http_version == "1.0"
        or [coding.strip().lower() for coding in codings] != ["chunked"]
    )
    if faulty:
        raise BadRequest(
            "The request framing is ambiguous.",
            detail="framing_cl_te",
            headers={"Connection": "close"},
        )


def check_host(headers: dict[str, list[str]], allowed: frozenset[str]) -> None:
    """Exactly one Host, naming this gateway (``name`` or ``name:port``)."""
    values = headers.get("host", [])
    if len(values) != 1:
        raise BadRequest(
            "The Host header is missing or repeated.", detail="host", headers=_CLOSE
        )
    host = values[0].strip().lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host not in allowed and name not in allowed:
        raise BadRequest(
            "The Host header names another site.", detail="host", headers=_CLOSE
        )


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """What every control reads: never the raw URL again."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, list[str]]
    client_address: str
    correlation_id: str
    scheme: str = "http"
    params: dict[str, list[str]] = field(default_factory=dict)
    #: DER of the client certificate (TLS, or a trusted proxy's header).
    client_certificate: bytes | None = None

    def header(self, name: str) -> str | None:
        """The single value of a header, or None; repeated headers are refused."""
        values = self.headers.get(name, [])
        if len(values) > 1:
            raise BadRequest("A header field is repeated.", detail="header_repeated")
        return values[0] if values else None

    def param_names(self) -> set[str]:
        return {name for name, _ in self.query}
