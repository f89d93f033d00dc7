"""The gateway's side of the audit stream: open it, build each request's
event from the trail, record it, count it, and refuse when it cannot be
recorded (unless the operator named a degraded mode)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kaitiaki.audit import (
    AuditEvent,
    Recorder,
    iso_time,
    load_audit_keys,
    open_sink,
)
from kaitiaki.audit.metrics import GatewayMetrics, MetricsListener
from kaitiaki.audit.redact import patient_identifier, pseudonymous, redact_query
from kaitiaki.errors import AuditSinkError, ConfigError, DependencyUnavailable
from kaitiaki.gateway.responses import Reply, refusal_reply
from kaitiaki.settings import Settings

if TYPE_CHECKING:
    from kaitiaki.gateway.trail import Trail

__all__ = ["GatewayAudit"]

logger = logging.getLogger("kaitiaki.gateway.audit")


class GatewayAudit:
    """Opened at startup; :meth:`finish` runs once per request."""

    def __init__(
        self, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings, self._clock = settings, clock
        audit = settings.audit
        keys = load_audit_keys(audit)
        self.metrics = GatewayMetrics()
        try:
            self.recorder = Recorder(
                audit,
                settings.gateway.instance,
                open_sink(audit),
                keys,
                clock=clock,
                on_health=lambda up: self.metrics.sink_up.set(1 if up else 0),
            )
        except AuditSinkError as exc:
            raise ConfigError(f"audit: cannot read the chain head: {exc}") from exc
        self.metrics.track_queue(lambda: self.recorder.queue_depth)
        self.listener = (
            MetricsListener(settings.metrics, self.metrics)
            if settings.metrics.enabled
            else None
        )
        self._started_events(keys.created)

    def _started_events(self, created: tuple[str, ...]) -> None:
        audit = self.settings.audit
        for name in created:
            self.recorder.security_event("key_created", detail=f"audit_{name}_key")
        # Keyed, so a database password in the settings cannot be guessed
        # offline from the fingerprint.
        fingerprint = self.recorder.keys.pseudonymiser.hash(
            self.settings.model_dump_json()
        )
        detail = f"hmac:{fingerprint[:16]}"
        before = self.recorder.last_detail("security", "config_loaded")
        if before is not None and before["detail"] != detail:
            self.recorder.security_event("config_changed", detail=detail)
        self.recorder.security_event("config_loaded", detail=detail)
        key_id = self.recorder.keys.signer.key_id
        signed = self.recorder.last_detail("checkpoint")
        if signed is not None and signed["key_id"] != key_id:
            self.recorder.security_event("key_rotated", key_id=key_id)
        if audit.degraded_mode != "refuse":
            logger.warning(
                "audit.degraded_mode = %s: serves unaudited", audit.degraded_mode
            )
            self.recorder.security_event(
                "degraded_mode_enabled", detail=audit.degraded_mode
            )
        self.recorder.security_event(
            "gateway_started", detail=f"sink={audit.sink} durability={audit.durability}"
        )

    def event(
        self, trail: Trail, status: int, bytes_out: int, seconds: float
    ) -> AuditEvent:
        hasher = self.recorder.keys.pseudonymiser
        raw_patient = patient_identifier(
            trail.resource_type, trail.resource_id, trail.query
        )
        return AuditEvent(
            time=iso_time(self._clock()),
            instance=self.settings.gateway.instance,
            correlation_id=trail.correlation_id,
            method=trail.method,
            route=trail.route,
            status=status,
            outcome=trail.outcome(status),
            client_address=trail.client_address,
            latency_ms=round(seconds * 1000, 3),
            interaction=trail.interaction,
            resource_type=trail.resource_type,
            client_id=trail.client_id,
            subject=pseudonymous(trail.subject, hasher),
            scope=trail.scope,
            token_id=hasher.hash(trail.token_id) if trail.token_id else None,
            organisation=trail.organisation,
            facility=trail.facility,
            purpose_of_use=trail.purpose_of_use,
            patient=hasher.patient(raw_patient) if raw_patient else None,
            query=redact_query(trail.query, hasher) if trail.query else None,
            refusal_code=trail.refusal_code,
            refusal_step=trail.refusal_step,
            bytes_in=trail.bytes_in,
            bytes_out=bytes_out,
            waf_rules=",".join(trail.waf.ids()) or None,
            waf_score=trail.waf.score,
        )

    def check_ready(self) -> None:
        """Before the upstream is called: refuse while the sink is known to be
        failing or the batched queue is full, so nothing changes upstream that
        cannot be recorded. This request's own record is still attempted, and
        one that commits ends the outage."""
        if self.settings.audit.degraded_mode != "refuse":
            return
        if not self.recorder.healthy or self.recorder.saturated:
            raise _unavailable()

    async def finish(self, trail: Trail, reply: Reply, started: float) -> Reply:
        """Record the request; the reply to send (503 if it was not recorded)."""
        seconds = time.perf_counter() - started
        event = self.event(trail, reply.status, len(reply.body), seconds)
        recorded = await self.recorder.record(event.to_record())
        seconds = time.perf_counter() - started
        if not recorded and self.settings.audit.degraded_mode == "refuse":
            self.metrics.unaudited.labels("refused").inc()
            reply = _unaudited()
            self._count(trail, reply.status, "audit", "audit_unavailable", seconds)
            return reply
        if not recorded:
            self.metrics.unaudited.labels("served").inc()
        self._count(
            trail, reply.status, trail.refusal_step, trail.refusal_code, seconds
        )
        return reply

    def _count(
        self,
        trail: Trail,
        status: int,
        step: str | None,
        code: str | None,
        seconds: float,
    ) -> None:
        self.metrics.observe(
            outcome=trail.outcome(status) if step != "audit" else "refused",
            status=status,
            refusal_step=step,
            refusal_code=code,
            seconds=seconds,
        )

    def limiter_state(self, state: str) -> None:
        """The rate-limit store went down, degraded or came back."""
        self.metrics.limiter_up.set(1 if state == "healthy" else 0)
        if state == "healthy":
            self.recorder.security_event("limiter_recovered")
        else:
            self.recorder.security_event(
                "limiter_degraded", outcome="failure", detail=state
            )

    def jwks_fetch_failed(self, reason: str) -> None:
        self.recorder.security_event(
            "jwks_fetch_failed", outcome="failure", detail=reason
        )

    def close(self) -> None:
        self.recorder.security_event("gateway_stopped")
        self.recorder.close()
        if self.listener is not None:
            self.listener.close()


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "The request could not be recorded; try again later.",
        detail="audit_unavailable",
        headers={"Retry-After": "5"},
    )


def _unaudited() -> Reply:
    return refusal_reply(_unavailable())
