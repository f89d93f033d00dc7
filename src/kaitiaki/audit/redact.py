"""Redaction: keyed hashes for identifiers that reveal a person, masks for
secrets in free text, and the logging filter that applies them everywhere.

A patient identifier (an NHI, a Patient id, a ``patient``/``subject``
reference, an ``identifier`` value) becomes ``HMAC-SHA256(key, value)`` cut to
128 bits, so events about one patient correlate without naming them. Query
values are hashed the same way; only a few closed-vocabulary controls
(``_count``, ``_summary``, ``_total``) stay readable, and only when their
value is one of the few that parameter can take.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from kaitiaki.audit.events import escape

__all__ = [
    "Pseudonymiser",
    "RedactingFilter",
    "patient_identifier",
    "pseudonymous",
    "redact_query",
    "redact_text",
]

_NHI = re.compile(
    r"(?<![A-Za-z0-9])[A-HJ-NP-Z]{3}[0-9]{2}(?:[0-9]{2}|[A-HJ-NP-Z]{2})(?![A-Za-z0-9])"
)
_PATIENT_PARAMS = ("patient", "subject", "identifier", "_id", "beneficiary")
_READABLE = re.compile(r"[A-Za-z0-9:._-]{1,32}")
_PLAIN_VALUES = {
    "_count": re.compile(r"[0-9]{1,4}"),
    "_summary": re.compile(r"true|false|text|data|count"),
    "_total": re.compile(r"none|estimate|accurate"),
}

# Secrets in free text: header lines, bearer credentials, JWT-shaped and long
# base64 runs (tokens, Request-Context), NHIs.
_HEADER = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|dpop|"
    r"request-context|x-api-key)\b(\s*[:=]\s*)[^\r\n,;]*"
)
_BEARER = re.compile(r"(?i)\b(bearer|dpop|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?")
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_=-]{40,}")
_HEX = re.compile(r"[0-9a-f]+")
_MIXED = re.compile(r"(?=.*[A-Za-z])(?=.*[0-9])")
_MAX_LOG_TEXT = 4000


class Pseudonymiser:
    """Keyed hashing of identifiers; the key never leaves this object."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the audit HMAC key must have at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymiser(<key>)"

    def hash(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:32]

    def patient(self, identifier: str) -> str:
        """The hash of a patient identifier, normalised so forms correlate."""
        return self.hash(_normalise(identifier))


def _normalise(identifier: str) -> str:
    value = identifier.rsplit("|", 1)[-1].rstrip("/")
    value = value.rsplit("/", 1)[-1]
    return value.upper() if _NHI.fullmatch(value.upper()) else value


def patient_identifier(
    resource_type: str | None,
    resource_id: str | None,
    query: tuple[tuple[str, str], ...],
) -> str | None:
    """The raw identifier of the patient a request is about, if it names one."""
    if resource_type == "Patient" and resource_id:
        return resource_id
    for name, value in query:
        base = name.split(":", 1)[0].split(".", 1)[0]
        person = base != "subject" or "Patient/" in value or _NHI.search(value)
        if base in _PATIENT_PARAMS and value and person:
            return value.split(",", 1)[0]
    for _, value in query:
        found = _NHI.search(value.upper())
        if found:
            return found.group()
    return None


def pseudonymous(value: str | None, hasher: Pseudonymiser) -> str | None:
    """``value`` as it is, unless it holds an NHI (a patient's own token
    ``sub``, say): then its hash."""
    if value is None or not _NHI.search(value.upper()):
        return value
    return "h:" + hasher.patient(value)


def redact_query(query: tuple[tuple[str, str], ...], hasher: Pseudonymiser) -> str:
    """Parameter names with hashed values: what was searched, not for whom."""
    parts = []
    for name, value in query:
        shown_name = name if _READABLE.fullmatch(name) else "h:" + hasher.hash(name)
        plain = _PLAIN_VALUES.get(name)
        if plain is not None and plain.fullmatch(value):
            parts.append(f"{shown_name}={value}")
        else:
            parts.append(f"{shown_name}=h:{hasher.hash(value)}")
    return "&".join(parts)


def _mask_run(match: re.Match[str]) -> str:
    """Long runs that mix letters and digits are credentials;
    hex digests and long snake_case names are left alone."""
    text = match.group()
    if _HEX.fullmatch(text) or not _MIXED.search(text):
        return text
    return "[redacted]"


def redact_text(text: str, hasher: Pseudonymiser | None = None) -> str:
    """Free text with secrets masked, NHIs hashed (or masked) and escaped."""
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _JWT.sub("[redacted]", text)
    text = _LONG_RUN.sub(_mask_run, text)
    if hasher is None:
        text = _NHI.sub("[nhi]", text)
    else:
        text = _NHI.sub(lambda m: "nhi:" + hasher.patient(m.group()), text)
    return escape(text, _MAX_LOG_TEXT)


class RedactingFilter(logging.Filter):
    """Applied to every handler: the message, its arguments and any traceback
    are redacted before a formatter sees them, at every level."""

    def __init__(self, hasher: Pseudonymiser | None = None) -> None:
        super().__init__()
        self._hasher = hasher

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact_text(message, self._hasher), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact_block(record.exc_text, self._hasher)
        if record.stack_info:
            record.stack_info = _redact_block(record.stack_info, self._hasher)
        return True


def _redact_block(text: str, hasher: Pseudonymiser | None) -> str:
    return "\n".join(redact_text(line, hasher) for line in text.splitlines())
