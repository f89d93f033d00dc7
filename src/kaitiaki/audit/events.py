"""Audit events: an allow-list of columns, so nothing else can be written.

There is no column for a token, a cookie, a header value, a body, the raw
Request-Context, a query value or the raw URL: the route is recorded as its
template, a patient as a keyed hash, the query with its values hashed. Text
is escaped so that control characters cannot forge log lines.

Three kinds of event share one record shape and one hash chain: ``request``
(one per request), ``security`` (configuration loaded, key rotated, JWKS
fetch failed, a dependency degraded, admin actions) and ``checkpoint`` (a
signed statement of the chain head).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "COLUMNS",
    "SECURITY_KINDS",
    "AuditEvent",
    "Record",
    "SecurityEvent",
    "blank_record",
    "escape",
]

Value = str | int | float | None
Record = dict[str, Value]

#: Every column an audit record may have, in storage order, with its type.
COLUMNS: tuple[tuple[str, type], ...] = (
    ("event_type", str),
    ("time", str),
    ("instance", str),
    ("seq", int),
    ("prev_hash", str),
    ("hash", str),
    ("correlation_id", str),
    ("method", str),
    ("route", str),
    ("interaction", str),
    ("resource_type", str),
    ("status", int),
    ("outcome", str),
    ("refusal_code", str),
    ("refusal_step", str),
    ("latency_ms", float),
    ("bytes_in", int),
    ("bytes_out", int),
    ("client_address", str),
    ("client_id", str),
    ("subject", str),
    ("scope", str),
    ("token_id", str),
    ("organisation", str),
    ("facility", str),
    ("purpose_of_use", str),
    ("patient", str),
    ("query", str),
    ("waf_rules", str),
    ("waf_score", int),
    ("action", str),
    ("detail", str),
    ("key_id", str),
    ("signature", str),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)

#: The security events other modules may report (``Recorder.security_event``).
SECURITY_KINDS = frozenset(
    {
        "gateway_started",
        "gateway_stopped",
        "config_loaded",
        "config_changed",
        "degraded_mode_enabled",
        "key_created",
        "key_rotated",
        "jwks_fetch_failed",
        "limiter_degraded",
        "limiter_recovered",
        "sink_degraded",
        "sink_recovered",
        "admin_action",
    }
)

# Control characters, the backslash, and lone surrogates (which no sink could
# encode as UTF-8).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\ud800-\udfff]")
_MAX_TEXT = 256


def escape(value: str, limit: int = _MAX_TEXT) -> str:
    """Control characters and backslashes as ``\\xNN``, at most ``limit`` long."""
    if value.isascii() and value.isprintable() and "\\" not in value:
        return value[:limit]  # printable ASCII but the backslash: nothing to escape
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)[:limit]


def blank_record() -> Record:
    return dict.fromkeys(COLUMN_NAMES)


def _clean(values: dict[str, Value]) -> Record:
    record = blank_record()
    for name, value in values.items():
        if name not in record:
            raise TypeError(f"{name!r} is not an audit column")
        record[name] = escape(value) if isinstance(value, str) else value
    return record


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One request, however it ended."""

    time: str
    instance: str
    correlation_id: str
    method: str
    route: str
    status: int
    outcome: str
    client_address: str
    latency_ms: float
    interaction: str | None = None
    resource_type: str | None = None
    client_id: str | None = None
    subject: str | None = None
    scope: str | None = None
    token_id: str | None = None
    organisation: str | None = None
    facility: str | None = None
    purpose_of_use: str | None = None
    patient: str | None = None
    query: str | None = None
    refusal_code: str | None = None
    refusal_step: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    waf_rules: str | None = None
    waf_score: int = 0

    def to_record(self) -> Record:
        """The event as one record (chain columns empty), text escaped."""
        values: dict[str, Value] = {
            name: getattr(self, name) for name in self.__slots__
        }
        return _clean({"event_type": "request", **values})


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Something security-relevant that is not a request."""

    time: str
    instance: str
    action: str
    outcome: Literal["success", "failure"] = "success"
    detail: str | None = None
    client_id: str | None = None
    subject: str | None = None
    route: str | None = None
    key_id: str | None = None

    def __post_init__(self) -> None:
        if self.action not in SECURITY_KINDS:
            raise ValueError(
                f"unknown security event {self.action!r}; "
                f"use one of {sorted(SECURITY_KINDS)}"
            )

    def to_record(self) -> Record:
        values: dict[str, Value] = {
            name: getattr(self, name) for name in self.__slots__
        }
        return _clean({"event_type": "security", **values})
