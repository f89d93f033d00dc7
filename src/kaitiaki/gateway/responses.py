"""Replies the gateway builds itself, and the headers every reply carries."""

from __future__ import annotations

from dataclasses import dataclass, field

from kaitiaki.errors import Refusal
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.rest.errors import refusal_errors

__all__ = ["Reply", "refusal_reply", "security_headers"]

FHIR_JSON = "application/fhir+json; charset=utf-8"


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def security_headers(*, cacheable: bool) -> list[tuple[str, str]]:
    """Hardening headers on every reply; patient data is never cacheable."""
    cache = "public, max-age=300" if cacheable else "no-store, private"
    headers = [
        ("cache-control", cache),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ]
    if not cacheable:
        # For caches older than Cache-Control (HDR-13: Expires alongside it).
        headers += [("pragma", "no-cache"), ("expires", "0")]
    return headers


def _www_authenticate(refusal: Refusal) -> str | None:
    if refusal.status == 401:
        error = getattr(refusal, "bearer_error", None)
        scheme = getattr(refusal, "scheme", "Bearer")
        return f'{scheme} error="{error}"' if error else scheme
    if refusal.code == "insufficient_scope":
        return 'Bearer error="insufficient_scope"'
    return None


def refusal_reply(refusal: Refusal, *, rest: bool = False) -> Reply:
    """The reply for a refusal, with its protocol headers: an OperationOutcome,
    or on a REST route the standard's ``errors[]`` body."""
    headers = [("content-type", "application/json" if rest else FHIR_JSON)]
    challenge = _www_authenticate(refusal)
    # The authenticate step may have set the full challenge itself.
    if challenge and "www-authenticate" not in {n.lower() for n in refusal.headers}:
        headers.append(("www-authenticate", challenge))
    own = {name.lower(): value for name, value in refusal.headers.items()}
    headers.extend(own.items())
    # A refusal is never cached and carries the same hardening as a reply.
    headers.extend(h for h in security_headers(cacheable=False) if h[0] not in own)
    body = refusal_errors(refusal) if rest else refusal_outcome(refusal)
    return Reply(refusal.status, headers, body)
