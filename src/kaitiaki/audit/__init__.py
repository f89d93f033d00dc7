"""The audit stream: one allow-listed, hash-chained event per request, plus
security events, through one of several sinks."""

from kaitiaki.audit.chain import ChainReport, verify_chains
from kaitiaki.audit.events import SECURITY_KINDS, AuditEvent, Record, SecurityEvent
from kaitiaki.audit.keys import AuditKeys, load_audit_keys, load_verification_keys
from kaitiaki.audit.recorder import Recorder, iso_time
from kaitiaki.audit.redact import Pseudonymiser, RedactingFilter, redact_text
from kaitiaki.audit.sinks import AuditSink, Query, open_sink

__all__ = [
    "SECURITY_KINDS",
    "AuditEvent",
    "AuditKeys",
    "AuditSink",
    "ChainReport",
    "Pseudonymiser",
    "Query",
    "Record",
    "Recorder",
    "RedactingFilter",
    "SecurityEvent",
    "iso_time",
    "load_audit_keys",
    "load_verification_keys",
    "open_sink",
    "redact_text",
    "verify_chains",
]
