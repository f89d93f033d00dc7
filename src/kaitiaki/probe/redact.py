"""Redaction of evidence: no token, cookie, secret or patient data reaches a
report. Error bodies are kept (truncated) because they are the evidence;
resource bodies are summarised, never copied."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from kaitiaki.strictjson import well_formed

__all__ = ["Redactor"]

_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*\.?[A-Za-z0-9_\-]*")
# NHI, old (AAANNNC) and new (AAANNAA) formats; letters exclude I and O.
_NHI = re.compile(r"\b[A-HJ-NP-Z]{3}\d{2}(?:\d{2}|[A-HJ-NP-Z]{2}|\d[A-HJ-NP-Z\d])\b")
_TOKEN_PARAM = re.compile(r"(access_token=)[^&\s]*", re.IGNORECASE)
_SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "dpop", "request-context", "proxy-authorization"}
)
_KEEP_BODIES = frozenset({"OperationOutcome", "CapabilityStatement"})
MAX_TEXT = 1500


class Redactor:
    """Replaces known secrets and anything that looks like one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if len(s) >= 6}

    def add_secret(self, value: str) -> None:
        if len(value) >= 6:
            self._secrets.add(value)

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(secret, "<secret redacted>")
        value = _JWT.sub("<token redacted>", value)
        value = _TOKEN_PARAM.sub(r"\1<redacted>", value)
        return _NHI.sub("<NHI redacted>", value)

    def url(self, value: str) -> str:
        if len(value) > 400:
            value = value[:400] + "…"
        return self.text(value)

    def header(self, name: str, value: str) -> str:
        lower = name.lower()
        if lower in _SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if lower == "authorization" else ""
            shown = f"{scheme} " if scheme and scheme != value else ""
            return f"{shown}<redacted, {len(value)} characters>"
        if lower == "set-cookie":
            cookie_name = value.split("=", 1)[0]
            return f"{cookie_name}=<redacted>"
        return self.text(value[:300])

    def headers(self, pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple((name, self.header(name, value)) for name, value in pairs)

    def body(self, raw: bytes | None) -> str | None:
        if not raw:
            return None
        summary = _resource_summary(raw.decode("utf-8", "replace"))
        if summary is not None:
            return summary
        text = self.text(_pretty(raw) or raw[: MAX_TEXT * 4].decode("utf-8", "replace"))
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + f"… ({len(raw)} bytes in all)"
        return text


def _pretty(raw: bytes) -> str | None:
    """Indented JSON, so a discovery document or an error reads in a report."""
    try:
        # A lone surrogate in the target's JSON would stop the report's
        # UTF-8 file: it is shown as U+FFFD.
        return well_formed(json.dumps(json.loads(raw), indent=1, ensure_ascii=False))
    except (ValueError, RecursionError):
        return None


def _resource_summary(text: str) -> str | None:
    """A FHIR resource other than an error or capability document is patient
    data: say what it was, never what it held."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return None
    kind = data["resourceType"]
    if kind in _KEEP_BODIES:
        return None
    if kind == "Bundle":
        entries = data.get("entry")
        count = len(entries) if isinstance(entries, list) else 0
        return f"(a {kind} with {count} entries; content withheld: patient data)"
    return f"(a {kind} resource; content withheld: patient data)"
