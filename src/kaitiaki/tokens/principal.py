"""Who is calling, as established by a verified access token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["Principal"]


def _no_claims() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller.

    ``jkt`` and ``x5t_s256`` are the token's confirmation (``cnf``) members:
    when set, the token is sender-constrained and was checked against a DPoP
    proof or the client certificate. ``claims`` holds every verified claim
    (read-only) for later controls; it is never logged.
    """

    issuer: str
    subject: str
    client_id: str
    scope: str
    token_id: str | None
    expires_at: int
    jkt: str | None = None
    x5t_s256: str | None = None
    token_format: Literal["jwt", "opaque"] = "jwt"  # noqa: S105
    claims: Mapping[str, Any] = field(default_factory=_no_claims)
    # Context for authorisation: the SMART launch patient, the assurance level,
    # and whether the token was issued to the client itself (no end user).
    patient: str | None = None
    acr: str | None = None
    client_credentials: bool = False
