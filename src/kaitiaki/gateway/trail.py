"""What one request through the gateway established: the trail its audit
event is made of, and the access its authorisation granted."""

from __future__ import annotations

from dataclasses import dataclass, field

from kaitiaki.controls.labels import Rule
from kaitiaki.errors import Refusal
from kaitiaki.fhir.scopes import Grants
from kaitiaki.tokens.jwt import Principal
from kaitiaki.waf import Findings

__all__ = ["Access", "Trail"]


@dataclass(slots=True)
class Trail:
    """What the pipeline established so far; the audit event is built from it."""

    method: str
    client_address: str
    correlation_id: str = "-"
    route: str = "(unmatched)"
    step: str = "edge"
    interaction: str | None = None
    resource_type: str | None = None
    client_id: str | None = None
    subject: str | None = None
    scope: str | None = None
    token_id: str | None = None  # the jti, hashed before it is recorded
    refusal_code: str | None = None
    refusal_step: str | None = None
    bytes_in: int = 0
    # From Request-Context, once parsed: HPI organisation and facility ids and
    # the purpose-of-use codes, space-separated; never names or user ids.
    organisation: str | None = None
    facility: str | None = None
    purpose_of_use: str | None = None
    # Raw, for the audit event to hash; never serialised as they are.
    resource_id: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    api: str = "fhir"
    waf: Findings = field(default_factory=Findings)

    def refuse(self, refusal: Refusal) -> None:
        self.refusal_code, self.refusal_step = refusal.detail, self.step

    def outcome(self, status: int) -> str:
        if self.refusal_code is not None:
            return "refused" if status < 500 else "failed"
        return "served" if status < 500 else "failed"


@dataclass(slots=True)
class Access:
    """What authorisation established, for the body and the upstream steps."""

    principal: Principal
    grants: Grants
    patient: str | None = None
    request_context: str | None = None
    single: bool = False
    operation: bool = False
    rules: tuple[Rule, ...] = ()
    # Entries of a batch or transaction Bundle, charged to the limits once the
    # body has been read (``[limits.costs] entry`` units each).
    entries: int = 0

    @property
    def checks_egress(self) -> bool:
        return self.patient is not None or bool(self.rules)
