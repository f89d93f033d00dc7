"""The gateway as an ASGI application: one request, one way through.

edge → filter → authenticate → throttle → authorise → validate → upstream,
with exactly one audit event per request, committed before the reply is sent.
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from anyio import to_thread

from kaitiaki.audit import AuditEvent, AuditSink, open_sink
from kaitiaki.errors import ConfigError, DependencyUnavailable, InternalFault, Refusal
from kaitiaki.gateway.assertion import AssertionSigner
from kaitiaki.gateway.cors import cors_headers
from kaitiaki.gateway.edge import EdgePolicy
from kaitiaki.gateway.exchange import Trail, handle_request
from kaitiaki.gateway.responses import Reply, refusal_reply
from kaitiaki.limits import RateLimits
from kaitiaki.settings import Settings
from kaitiaki.tokens import JwksCache
from kaitiaki.waf import TrafficFilter

__all__ = ["Gateway"]

logger = logging.getLogger("kaitiaki.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Gateway:
    """ASGI application; the shared clients are opened in the lifespan."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.session: aiohttp.ClientSession | None = None
        self.keys: JwksCache | None = None
        self.limits: RateLimits | None = None
        self.sink: AuditSink | None = None
        self.filter = TrafficFilter(settings.waf)
        self.edge = EdgePolicy.from_settings(settings)
        self.signer = _signer(settings)
        self.upstream_tls = _upstream_tls(settings)

    async def startup(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=256, ttl_dns_cache=300, ssl=self.upstream_tls or True
        )
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, trust_env=False
        )
        self.keys = JwksCache(self.settings.auth, self.session, self.clock)
        self.limits = RateLimits(self.settings.limits)
        self.sink = open_sink(self.settings.audit)
        logger.info("gateway %s ready", self.settings.gateway.instance)

    async def shutdown(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.limits is not None:
            await self.limits.close()
        if self.sink is not None:
            self.sink.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        client = scope.get("client") or ("unknown", 0)
        trail = Trail(method=scope["method"], client_address=str(client[0]))
        try:
            reply = await handle_request(self, scope, receive, trail)
        except Refusal as refusal:
            trail.refuse(refusal)
            reply = refusal_reply(refusal)
        except Exception:
            # The one top-level handler: log the fault, show nothing of it.
            logger.exception("unhandled fault in step %s", trail.step)
            fault = InternalFault("The request could not be processed.")
            trail.refuse(fault)
            reply = refusal_reply(fault)

        reply.headers += _edge_headers(self.settings, scope)
        reply = await self._audit(trail, reply, started)
        await _send_reply(send, reply, trail.correlation_id)

    async def _audit(self, trail: Trail, reply: Reply, started: float) -> Reply:
        event = AuditEvent(
            time=datetime.fromtimestamp(self.clock(), UTC).isoformat(),
            instance=self.settings.gateway.instance,
            correlation_id=trail.correlation_id,
            method=trail.method,
            route=trail.route,
            status=reply.status,
            outcome=trail.outcome(reply.status),
            client_address=trail.client_address,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            interaction=trail.interaction,
            resource_type=trail.resource_type,
            client_id=trail.client_id,
            subject=trail.subject,
            refusal_code=trail.refusal_code,
            refusal_step=trail.refusal_step,
            bytes_in=trail.bytes_in,
            bytes_out=len(reply.body),
            waf_rules=",".join(trail.waf.ids()) or None,
            waf_score=trail.waf.score,
        )
        sink = self.sink
        if sink is None:
            return _unaudited()
        try:
            await to_thread.run_sync(sink.write, event)
        except (OSError, sqlite3.Error):
            logger.exception("audit sink failed; refusing rather than serve unaudited")
            return _unaudited()
        return reply


def _signer(settings: Settings) -> AssertionSigner | None:
    auth = settings.upstream_auth
    if auth.assertion_key is None:
        return None
    return AssertionSigner(
        auth.assertion_key,
        issuer=settings.gateway.instance,
        audience=auth.assertion_audience or settings.gateway.upstream,
        lifetime=auth.assertion_lifetime_seconds,
        header=auth.assertion_header,
    )


def _upstream_tls(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context for the upstream: a CA and/or a client certificate."""
    auth = settings.upstream_auth
    if auth.client_cert is None and auth.ca_file is None:
        return None
    context = ssl.create_default_context(cafile=auth.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if auth.client_cert is not None:
        try:
            context.load_cert_chain(auth.client_cert, auth.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "upstream_auth.client_cert/client_key: cannot load the certificate "
                "and key (PEM files)"
            ) from exc
    return context


def _edge_headers(settings: Settings, scope: Scope) -> list[tuple[str, str]]:
    """CORS headers for listed origins; HSTS on a TLS listener only."""
    origins = [
        value.decode("latin-1")
        for name, value in scope.get("headers", [])
        if name.lower() == b"origin"
    ]
    headers = cors_headers(settings.cors, {"origin": origins}) if origins else []
    if scope.get("scheme") == "https":
        headers.append(
            ("strict-transport-security", "max-age=31536000; includeSubDomains")
        )
    return headers


def _unaudited() -> Reply:
    return refusal_reply(
        DependencyUnavailable(
            "The request could not be recorded; try again later.",
            detail="audit_unavailable",
            headers={"Retry-After": "5"},
        )
    )


async def _send_reply(send: Send, reply: Reply, correlation_id: str) -> None:
    headers = [(b"x-correlation-id", correlation_id.encode())]
    headers += [
        (name.encode(), value.encode("latin-1")) for name, value in reply.headers
    ]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": reply.body})
