"""The gateway as an ASGI application: one request, one way through.

edge → filter → authenticate → throttle → authorise → validate → upstream,
with exactly one audit event per request, committed before the reply is sent.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from anyio import to_thread

from kaitiaki.audit import AuditEvent, AuditSink, open_sink
from kaitiaki.controls.content import Validator
from kaitiaki.errors import DependencyUnavailable, InternalFault, Refusal
from kaitiaki.gateway.exchange import Trail, handle_request
from kaitiaki.gateway.metadata import load_validator
from kaitiaki.gateway.responses import Reply, refusal_reply
from kaitiaki.limits import RateLimits
from kaitiaki.rest.openapi import OpenApiDocument
from kaitiaki.settings import Settings
from kaitiaki.tokens import JwksCache

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
        self.validator: Validator | None = None
        # Each REST route with its OpenAPI document, read and compiled once.
        self.rest_routes = [
            (
                route,
                OpenApiDocument.load(
                    route.openapi, allow_unknown_query=route.allow_unknown_query
                ),
            )
            for route in settings.rest
        ]

    async def startup(self) -> None:
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, trust_env=False
        )
        self.keys = JwksCache(self.settings.auth, self.session, self.clock)
        self.limits = RateLimits(self.settings.limits)
        self.sink = open_sink(self.settings.audit)
        self.validator = await load_validator(self.settings, self.session)
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
        # Refusals before routing (edge, framing) still answer in the format
        # of the prefix the raw path is under.
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if any(
            raw == route.prefix or raw.startswith(route.prefix + "/")
            for route, _ in self.rest_routes
        ):
            trail.api = "rest"
        try:
            reply = await handle_request(self, scope, receive, trail)
        except Refusal as refusal:
            trail.refuse(refusal)
            reply = refusal_reply(refusal, rest=trail.api == "rest")
        except Exception:
            # The one top-level handler: log the fault, show nothing of it.
            logger.exception("unhandled fault in step %s", trail.step)
            fault = InternalFault("The request could not be processed.")
            trail.refuse(fault)
            reply = refusal_reply(fault, rest=trail.api == "rest")

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
