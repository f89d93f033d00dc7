"""The gateway as an ASGI application: one request, one way through.

edge → filter → authenticate → authorise → throttle → validate → upstream,
with exactly one audit event per request, taken before the reply is sent
(committed first with ``strict`` durability, queued with ``batched``).
"""

from __future__ import annotations

import gc
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp

from kaitiaki.controls.content import Validator
from kaitiaki.errors import ConfigError, InternalFault, Refusal
from kaitiaki.gateway.assertion import AssertionSigner
from kaitiaki.gateway.auditing import GatewayAudit
from kaitiaki.gateway.cors import cors_headers
from kaitiaki.gateway.edge import EdgePolicy
from kaitiaki.gateway.exchange import Trail, handle_request
from kaitiaki.gateway.inprocess import AppLifespan, ASGIApp, AsgiUpstream, in_process
from kaitiaki.gateway.metadata import load_validator
from kaitiaki.gateway.responses import Reply, refusal_reply
from kaitiaki.gateway.upstream import HttpUpstream, Upstream
from kaitiaki.iam import SecretStore
from kaitiaki.iam.startup import secret_store
from kaitiaki.iam.suspensions import Suspensions
from kaitiaki.limits import RateLimits
from kaitiaki.nz.request_context import RequestContextReader
from kaitiaki.rest.openapi import OpenApiDocument
from kaitiaki.settings import Settings
from kaitiaki.tokens import JwksCache
from kaitiaki.tokens.services import TokenServices, open_token_services
from kaitiaki.waf import TrafficFilter

__all__ = ["Gateway"]

logger = logging.getLogger("kaitiaki.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _freeze_heap() -> None:
    """Put what startup built out of the cycle collector's way.

    A full collection walks every live object: the rules, schemas, validator
    definitions and settings the gateway holds, about 130 ms with the event
    loop stopped, a few times a minute under load, and that was its p99
    latency (docs/benchmarks.md). Frozen objects are skipped. What an earlier
    freeze kept is thawed and collected first, so a reload's discarded
    settings are not kept for ever.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Gateway:
    """ASGI application; the shared clients are opened in the lifespan.

    Admitted requests go to ``settings.gateway.upstream`` over HTTP, or, when
    ``app`` is given, to that ASGI application in this process
    (:func:`kaitiaki.protect`), whose lifespan then runs inside the gateway's.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        freeze_heap: bool = False,
        app: ASGIApp | None = None,
    ):
        if app is None:
            _require_upstreams(settings)
        else:
            # The application serves the public paths itself.
            settings = in_process(settings)
        self.settings = settings
        self.app_lifespan = AppLifespan(app) if app is not None else None
        self._app = app
        self.upstream: Upstream | None = None
        self.clock = clock
        # Set by `kaitiaki serve`, which owns its process; never by an app
        # that embeds the gateway in a process of its own.
        self.freeze_heap = freeze_heap
        # Secret references (env:NAME) resolve against this, given by the CLI.
        self.environ: Mapping[str, str] = environ or {}
        self.secrets: SecretStore | None = None
        self.session: aiohttp.ClientSession | None = None
        self.keys: JwksCache | None = None
        self.tokens: TokenServices | None = None
        self.limits: RateLimits | None = None
        self.audit: GatewayAudit | None = None
        self.suspensions = Suspensions(None)
        self.validator: Validator | None = None
        self._derive(settings)
        self.upstream_tls = _upstream_tls(settings)

    def _derive(self, settings: Settings) -> None:
        """What is compiled once from the settings; a reload compiles it again
        (everything first, so a reload that fails changes nothing)."""
        # Each REST route with its OpenAPI document, read and compiled once.
        rest_routes = [
            (
                route,
                OpenApiDocument.load(
                    route.openapi, allow_unknown_query=route.allow_unknown_query
                ),
            )
            for route in settings.rest
        ]
        filter_, edge = TrafficFilter(settings.waf), EdgePolicy.from_settings(settings)
        signer = _signer(settings)
        contexts = RequestContextReader(
            settings.authorise.context, settings.validation.identifier_allow_list
        )
        self.rest_routes, self.filter, self.edge = rest_routes, filter_, edge
        self.signer, self.contexts = signer, contexts

    async def startup(self) -> None:
        if self.app_lifespan is not None:
            # The application is ready before the gateway reads its
            # CapabilityStatement or sends it anything.
            await self.app_lifespan.startup()
        connector = aiohttp.TCPConnector(
            limit=256, ttl_dns_cache=300, ssl=self.upstream_tls or True
        )
        # No cookie jar: one client serves every caller, and a jar would carry
        # the upstream session one caller was given to the next caller.
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.upstream = (
            AsgiUpstream(self._app, self.app_lifespan)
            if self._app is not None
            else HttpUpstream(self.session)
        )
        self.audit = GatewayAudit(self.settings, self.clock)
        self.keys = JwksCache(
            self.settings.auth,
            self.session,
            self.clock,
            on_fetch_failure=self.audit.jwks_fetch_failed,
        )
        self.secrets = secret_store(self.settings, self.environ)
        self.tokens = open_token_services(
            self.settings.auth, self.session, self.keys, self.clock, self.secrets
        )
        self.limits = RateLimits(self.settings.limits)
        self.limits.on_state = self.audit.limiter_state
        self.suspensions = Suspensions(Path(self.settings.admin.suspensions_file))
        _warn_weak_policies(self.settings)
        self.validator = await load_validator(self.settings, self.upstream)
        if self.freeze_heap:
            _freeze_heap()
        logger.info("gateway %s ready", self.settings.gateway.instance)

    async def apply_settings(self, settings: Settings) -> None:
        """Switch to reloaded settings. The listeners, the audit sink and the
        upstream TLS context stay as they are: they need a restart."""
        if self.session is None or self.upstream is None:
            raise RuntimeError("gateway used before startup")
        if self._app is None:
            _require_upstreams(settings)
        else:
            settings = in_process(settings)
        validator = self.validator
        if (settings.validation, settings.gateway.upstream) != (
            self.settings.validation,
            self.settings.gateway.upstream,
        ):
            validator = await load_validator(settings, self.upstream)
        self._derive(settings)
        self.validator = validator
        if settings.auth != self.settings.auth:
            failed = self.audit.jwks_fetch_failed if self.audit else None
            self.keys = JwksCache(
                settings.auth, self.session, self.clock, on_fetch_failure=failed
            )
            self.secrets = secret_store(settings, self.environ)
            old_tokens, self.tokens = (
                self.tokens,
                open_token_services(
                    settings.auth, self.session, self.keys, self.clock, self.secrets
                ),
            )
            if old_tokens is not None:
                await old_tokens.replay.close()
        if settings.limits != self.settings.limits and self.limits is not None:
            old, self.limits = self.limits, RateLimits(settings.limits)
            self.limits.on_state = old.on_state
            await old.close()
        self.settings = settings
        if self.freeze_heap:
            _freeze_heap()
        logger.warning("gateway %s settings reloaded", settings.gateway.instance)

    async def shutdown(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.limits is not None:
            await self.limits.close()
        if self.tokens is not None:
            await self.tokens.replay.close()
        if isinstance(self.upstream, AsgiUpstream):
            await self.upstream.close()
        if self.audit is not None:
            self.audit.close()
        if self.app_lifespan is not None:
            await self.app_lifespan.shutdown()

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

        reply.headers += _edge_headers(self.settings, scope)
        reply = await self._audit(trail, reply, started)
        await _send_reply(send, reply, trail.correlation_id)

    async def listener_refused(
        self, refusal: Refusal, client_address: str, method: str
    ) -> None:
        """Record a request the listener refused before this app saw it
        (:mod:`kaitiaki.gateway.listener`): one event, like every refusal."""
        if self.audit is None:
            return
        trail = Trail(
            method=method,
            client_address=client_address,
            correlation_id=str(uuid.uuid4()),
            step="listener",
        )
        trail.refuse(refusal)
        await self.audit.finish(trail, refusal_reply(refusal), time.perf_counter())

    async def _audit(self, trail: Trail, reply: Reply, started: float) -> Reply:
        if self.audit is None:
            raise RuntimeError("gateway used before startup")
        return await self.audit.finish(trail, reply, started)


def _require_upstreams(settings: Settings) -> None:
    """A gateway in front of HTTP upstreams must be told where they are."""
    if not settings.gateway.upstream:
        raise ConfigError(
            "gateway.upstream: the URL of the FHIR upstream the gateway protects "
            "(only kaitiaki.protect, which calls an application in its own "
            "process, runs without one)"
        )
    for route in settings.rest:
        if not route.upstream:
            raise ConfigError(f"rest route {route.prefix}: upstream is required")


def _warn_weak_policies(settings: Settings) -> None:
    authorise = settings.authorise
    policies: set[str | None] = {authorise.client_credentials}
    policies |= {route.client_credentials for route in authorise.routes}
    if "allow" in policies:
        logger.warning(
            "client credentials are accepted without a Request-Context "
            '(authorise.client_credentials = "allow")'
        )


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
