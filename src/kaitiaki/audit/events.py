"""The audit event: an allow-list of fields, so nothing else can be written.

There is no field for a token, a cookie, a header value, a body, a query
string or the raw URL: the route is recorded as its template. Text fields are
escaped so that control characters cannot forge log lines.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

__all__ = ["AuditEvent"]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _escape(value: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)[:256]


@dataclass(frozen=True, slots=True)
class AuditEvent:
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
    refusal_code: str | None = None
    refusal_step: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    waf_rules: str | None = None
    waf_score: int = 0

    def to_record(self) -> dict[str, str | int | float | None]:
        """The event as plain data, every text field escaped."""
        record = asdict(self)
        return {
            name: _escape(value) if isinstance(value, str) else value
            for name, value in record.items()
        }

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(item.name for item in fields(cls))
