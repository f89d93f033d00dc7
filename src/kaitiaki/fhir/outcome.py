"""OperationOutcome bodies for refusals on FHIR routes (catalogue §4.4)."""

from __future__ import annotations

import json

from kaitiaki.errors import Refusal

__all__ = ["operation_outcome", "refusal_outcome"]

_FATAL = frozenset({500, 502, 503, 504})


def operation_outcome(
    code: str, message: str, *, severity: str = "error", expression: str | None = None
) -> dict[str, object]:
    issue: dict[str, object] = {
        "severity": severity,
        "code": code,
        "details": {"text": message},
    }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def refusal_outcome(refusal: Refusal) -> bytes:
    """Serialise a refusal; only its safe message and expression are shown."""
    severity = "fatal" if refusal.status in _FATAL else "error"
    body = operation_outcome(
        refusal.issue_code,
        refusal.message,
        severity=severity,
        expression=refusal.expression,
    )
    return json.dumps(body, separators=(",", ":")).encode()
