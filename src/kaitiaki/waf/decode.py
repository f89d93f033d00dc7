"""The decodings attackers use to hide a payload, undone before any rule runs.

Each inspected value yields a small, bounded set of variants: the value as
received, and the value after repeated URL decoding (``%XX`` and ``%uXXXX``),
HTML character references, ``\\uXXXX``/``\\xHH`` escapes, null removal, SQL
comment removal and whitespace compression. Rules flagged for base64 also see
the decoded text of values that are valid base64 of UTF-8 text. Every step is
linear in the input; nothing here can loop more than ``_ROUNDS`` times.
"""

from __future__ import annotations

import binascii
import html
from urllib.parse import unquote

import re2

from kaitiaki.strictjson import well_formed

__all__ = ["base64_text", "shell_unquoted", "variants"]

_ROUNDS = 3
_UNICODE_ESCAPE = re2.compile(r"(?i)(?:\\u|%u)([0-9a-f]{4})")
_HEX_ESCAPE = re2.compile(r"(?i)\\x([0-9a-f]{2})")
_COMMENT = re2.compile(r"/\*.*?\*/")
_LOOSE_ENTITY = re2.compile(r"(?i)&(?:tab|newline);")
# Plain str operations on the hot path: C speed, linear, no regex at all.
_SPACES = frozenset("\t\n\r\x0b\x0c")
_SHELL_QUOTES = str.maketrans("", "", "\\\"'^")
_SHELL_EMPTY = ("$()", "<()", ">()", "${IFS}", "$IFS", "$@")
_BASE64_CHARS = str.maketrans(
    "", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-="
)


def _unescape(text: str) -> str:
    # "\ud83d\ude00" is one character, "\ud800" alone none at all (U+FFFD).
    text = well_formed(_UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
    return str(_HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))


def _decode_once(text: str) -> str:
    if "%" in text:
        text = unquote(text, errors="replace")
    if "&" in text:
        text = str(_LOOSE_ENTITY.sub("", html.unescape(text)))
    if "\\" in text or "%u" in text or "%U" in text:
        text = _unescape(text)
    return text


def _decoded(text: str) -> str:
    for _ in range(_ROUNDS):
        decoded = _decode_once(text)
        if decoded == text:
            break
        text = decoded
    return text


def _normalised(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    if "/*" in text:
        text = str(_COMMENT.sub(" ", text))
    if "  " in text or not _SPACES.isdisjoint(text):
        text = " ".join(text.split())
    return text


def variants(value: str) -> tuple[str, ...]:
    """The value and its decoded forms, without duplicates, in a fixed order."""
    decoded = _decoded(value)
    normal = _normalised(decoded)
    found = [value]
    for text in (decoded, normal):
        if text not in found:
            found.append(text)
    return tuple(found)


def shell_unquoted(text: str) -> str | None:
    """The text as a shell would run it (quotes, escapes, empty ``$()`` and
    ``$IFS`` removed, after CRS's cmdLine transformation), or None if equal."""
    unquoted = text.translate(_SHELL_QUOTES)
    if "$" in unquoted or "(" in unquoted:
        for empty in _SHELL_EMPTY:
            unquoted = unquoted.replace(empty, "")
    return unquoted if unquoted != text else None


def base64_text(value: str) -> str | None:
    """The UTF-8 text a base64 (or base64url) value encodes, or None."""
    stripped = value.strip()
    if len(stripped) < 16 or stripped.translate(_BASE64_CHARS):
        return None
    if "=" in stripped.rstrip("="):
        return None
    padded = stripped.replace("-", "+").replace("_", "/")
    padded += "=" * (-len(padded) % 4)
    try:
        raw = binascii.a2b_base64(padded)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
