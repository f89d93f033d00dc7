"""The audit stream: one allow-listed event per request, to one sink."""

from kaitiaki.audit.events import AuditEvent
from kaitiaki.audit.sinks import AuditSink, open_sink, read_events

__all__ = ["AuditEvent", "AuditSink", "open_sink", "read_events"]
