"""Strict JSON for tokens and bodies: no duplicate members, no NaN, bounded size.

Besides the grammar, a document is refused when it nests deeper than
``max_depth``, or (with :class:`JsonLimits`) when one object has more
members, one array more items or one string more characters than allowed,
and when a string or member name holds a lone surrogate (``"\\ud800"``):
I-JSON (RFC 7493 §2.1) forbids them, no UTF-8 encoder can write them, and
every later step that encodes the value (a filter, a database, a log) would
fail on it instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonLimits", "StrictJSONError", "loads_strict", "well_formed"]


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Size limits on one JSON document (defaults in docs/configuration.md)."""

    max_depth: int = 64
    max_members: int = 1000
    max_items: int = 10_000
    max_string: int = 1_048_576


class StrictJSONError(ValueError):
    """The text is not strict JSON; ``reason`` is a short stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError("duplicate_member")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise StrictJSONError("non_finite_number")


# Built once: json.loads with hooks would build a new decoder on every call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants
)


def well_formed(text: str) -> str:
    """``text`` with each surrogate pair joined and each lone surrogate as
    U+FFFD: what a UTF-8 encoder (RE2's, a database's, a file's) can take.
    For text that is shown or matched, not for text that is decided on:
    that is refused instead (:func:`loads_strict`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _check_text(text: str, limits: JsonLimits) -> None:
    if len(text) > limits.max_string:
        raise StrictJSONError("string_too_long")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJSONError("lone_surrogate") from None


def _check_shape(
    node: dict[str, Any] | list[Any], depth: int, limits: JsonLimits
) -> None:
    """Depth and sizes in one pass; recursion is bounded by ``max_depth``."""
    if depth > limits.max_depth:
        raise StrictJSONError("too_deep")
    children: Any
    if type(node) is dict:
        if len(node) > limits.max_members:
            raise StrictJSONError("too_many_members")
        for key in node:
            _check_text(key, limits)
        children = node.values()
    else:
        if len(node) > limits.max_items:
            raise StrictJSONError("too_many_items")
        children = node
    for child in children:
        kind = type(child)
        if kind is str:
            _check_text(child, limits)
        elif kind is dict or kind is list:
            _check_shape(child, depth + 1, limits)


def loads_strict(
    data: bytes, *, max_depth: int = 64, limits: JsonLimits | None = None
) -> Any:
    """Parse UTF-8 JSON, refusing what two parsers could read differently."""
    limits = limits or JsonLimits(
        max_depth=max_depth, max_members=2**31, max_items=2**31, max_string=2**31
    )
    if data.startswith(b"\xef\xbb\xbf"):
        raise StrictJSONError("byte_order_mark")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise StrictJSONError("invalid_utf8") from exc
    try:
        value = _DECODER.decode(text)
    except StrictJSONError:
        raise
    except RecursionError as exc:
        # CPython's scanner guards its recursion: far too deep, never a crash.
        raise StrictJSONError("too_deep") from exc
    except ValueError as exc:
        raise StrictJSONError("malformed") from exc
    if isinstance(value, dict | list):
        _check_shape(value, 1, limits)
    elif isinstance(value, str):
        _check_text(value, limits)
    return value
