"""Prometheus metrics of the gateway, on their own loopback listener.

The listener is separate from the gateway's port, so ``/metrics`` is never
under the FHIR base and never reachable through the public listener or a
proxy in front of it; it binds loopback unless the operator names
``expose_beyond_loopback``. Each gateway has its own registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from kaitiaki.errors import ConfigError
from kaitiaki.settings import MetricsSettings

__all__ = ["GatewayMetrics", "MetricsListener"]

logger = logging.getLogger("kaitiaki.audit.metrics")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GatewayMetrics:
    """Requests by outcome and refusal, latency, audit sink and limiter health."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kaitiaki_requests",
            "Requests by outcome, refusal step and code, and status.",
            ["outcome", "refusal_step", "refusal_code", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kaitiaki_request_duration_seconds",
            "Time from the request to its reply being ready, audit record included.",
            ["outcome"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.sink_up = Gauge(
            "kaitiaki_audit_sink_up",
            "1 while the audit sink accepts records, else 0.",
            registry=self.registry,
        )
        self.unaudited = Counter(
            "kaitiaki_audit_unrecorded",
            "Requests whose audit record could not be taken, by what happened.",
            ["action"],
            registry=self.registry,
        )
        self.limiter_up = Gauge(
            "kaitiaki_limiter_up",
            "1 while the rate-limit store answers, else 0.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "kaitiaki_audit_queue_depth",
            "Audit records waiting for the batched writer.",
            registry=self.registry,
        )
        self.sink_up.set(1)
        self.limiter_up.set(1)

    def observe(
        self,
        *,
        outcome: str,
        status: int,
        refusal_step: str | None,
        refusal_code: str | None,
        seconds: float,
    ) -> None:
        self.requests.labels(
            outcome, refusal_step or "", refusal_code or "", str(status)
        ).inc()
        self.latency.labels(outcome).observe(seconds)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))


class MetricsListener:
    """prometheus_client's own small HTTP server, in a daemon thread."""

    def __init__(self, settings: MetricsSettings, metrics: GatewayMetrics) -> None:
        if settings.expose_beyond_loopback:
            logger.warning(
                "metrics listener exposed beyond loopback on %s", settings.host
            )
        try:
            server, _ = start_http_server(
                settings.port, addr=settings.host, registry=metrics.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics.port: cannot listen on {settings.host}:{settings.port}: "
                f"{exc.strerror}"
            ) from exc
        self._server: WSGIServer = server
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
