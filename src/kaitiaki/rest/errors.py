"""Error bodies for non-FHIR routes in the standard's Part C format (§4.4).

``{"status": 400, "errors": [{"code": "...", "description": "...",
"field": "..."}]}``: the HTTP status, a stable code support staff can look
up, a client-safe sentence and, for validation failures, the failing part
(``query[1]``, ``body.items[0].nhi``) but never a value from the request.
"""

from __future__ import annotations

import json

from kaitiaki.errors import BadRequest, Refusal

__all__ = ["refusal_errors"]


def refusal_errors(refusal: Refusal) -> bytes:
    """Serialise a refusal; only its safe message, code and field are shown."""
    error: dict[str, object] = {
        # Validation reasons help the caller; token and server reasons stay opaque.
        "code": refusal.detail if isinstance(refusal, BadRequest) else refusal.code,
        "description": refusal.message,
    }
    if refusal.expression:
        error["field"] = refusal.expression
    body = {"status": refusal.status, "errors": [error]}
    return json.dumps(body, separators=(",", ":")).encode()
