"""Strict JSON for tokens and bodies: no duplicate members, no NaN, bounded depth."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["StrictJSONError", "loads_strict"]


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


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting outside strings, in one linear pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_strict(data: bytes, *, max_depth: int = 64) -> Any:
    """Parse UTF-8 JSON, refusing what two parsers could read differently."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise StrictJSONError("byte_order_mark")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise StrictJSONError("invalid_utf8") from exc
    # Counting brackets runs in C; the exact scan is needed only past the cap.
    brackets = text.count("[") + text.count("{")
    if brackets > max_depth and nesting_depth(text) > max_depth:
        raise StrictJSONError("too_deep")
    try:
        return _DECODER.decode(text)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise StrictJSONError("malformed") from exc
