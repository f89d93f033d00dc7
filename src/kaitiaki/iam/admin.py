"""The admin plane: a separate listener to reload settings, rotate keys,
suspend clients, query the audit trail and view the effective configuration.

Callers present an access token from the gateway's issuer for the admin
audience; a valid token for any other audience (an ordinary client's) is
refused with 403. Every request is decided by the Cedar policies and
audited: a permitted action writes a ``.permit`` event before it runs (no
audit, no action) and its outcome event after; a refusal writes one event.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.audit import AuditEvent
from kaitiaki.audit.commands import search_events
from kaitiaki.audit.sinks import Query
from kaitiaki.errors import (
    BadRequest,
    DependencyUnavailable,
    Forbidden,
    InvalidToken,
    KaitiakiError,
    NotFound,
    Refusal,
    Unauthenticated,
)
from kaitiaki.iam.keyring import KEY_KINDS
from kaitiaki.iam.masking import masked
from kaitiaki.iam.policy import ADMIN_ACTIONS, AdminPolicies
from kaitiaki.iam.rotation import KeyNotRotated, rotate_key
from kaitiaki.settings import Settings
from kaitiaki.tokens import Principal, verify_access_token

if TYPE_CHECKING:
    from kaitiaki.gateway.app import Gateway

__all__ = ["create_admin_app"]

logger = logging.getLogger("kaitiaki.iam.admin")

Work = Callable[[Request, Principal], Awaitable[dict[str, Any]]]
Reloader = Callable[[], Settings]
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_RESTART_SECTIONS = ("admin", "audit", "secrets", "keys")


def _error_body(refusal: Refusal) -> JSONResponse:
    body = {
        "status": refusal.status,
        "errors": [{"code": refusal.code, "description": refusal.message}],
    }
    headers = {**_NO_STORE, **refusal.headers}
    if refusal.status == 401:
        # RFC 6750 section 3.1: the error code once a token was sent.
        error = getattr(refusal, "bearer_error", None)
        challenge = 'Bearer realm="kaitiaki-admin"'
        if error:
            challenge += f', error="{error}"'
        headers["WWW-Authenticate"] = challenge
    return JSONResponse(body, refusal.status, headers=headers)


def _bearer(request: Request) -> str:
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        raise Unauthenticated("An admin access token is required.", detail="no_token")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("An admin access token is required.", detail="no_token")
    return token.strip()


class AdminPlane:
    """The handlers; the gateway supplies keys, sink, settings and suspensions."""

    def __init__(
        self, gateway: Gateway, policies: AdminPolicies, reload: Reloader
    ) -> None:
        self._gateway = gateway
        self._policies = policies
        self._reload = reload

    @property
    def settings(self) -> Settings:
        return self._gateway.settings

    async def _principal(self, request: Request) -> Principal:
        token = _bearer(request)
        keys, now = self._gateway.keys, int(self._gateway.clock())
        if keys is None:
            raise DependencyUnavailable("The admin plane is not ready.")
        auth = self.settings.auth
        admin = auth.model_copy(update={"audience": self.settings.admin.audience})
        try:
            return await verify_access_token(token, admin, keys, now)
        except InvalidToken as refusal:
            if refusal.detail != "aud_mismatch":
                raise
        # A valid token for another audience is a known caller, not an admin.
        await verify_access_token(token, auth, keys, now)
        raise Forbidden("This token is not for the admin plane.", detail="not_admin")

    def _event(
        self, request: Request, route: str, status: int, **fields: Any
    ) -> AuditEvent:
        client = request.client.host if request.client else "unknown"
        started = request.state.started
        return AuditEvent(
            time=datetime.fromtimestamp(self._gateway.clock(), UTC).isoformat(),
            instance=self.settings.gateway.instance,
            correlation_id=request.state.correlation_id,
            method=request.method,
            route=route,
            status=status,
            client_address=client,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            **fields,
        )

    async def _write(self, event: AuditEvent) -> None:
        audit = self._gateway.audit
        if audit is None:
            raise DependencyUnavailable("The admin action could not be recorded.")
        if not await audit.recorder.record(event.to_record()):
            logger.error("admin audit write failed")
            raise DependencyUnavailable(
                "The admin action could not be recorded.", detail="audit_unavailable"
            )

    async def run(
        self, request: Request, action: str, route: str, target: str, work: Work
    ) -> Response:
        """Authenticate, decide, audit, act, audit: the one way through."""
        # Both events of one request share an id of ours, never the caller's.
        request.state.correlation_id = str(uuid.uuid4())
        request.state.started = time.perf_counter()
        resource = f"{ADMIN_ACTIONS[action]}:{target}"
        who: dict[str, Any] = {
            "interaction": f"admin.{action}",
            "resource_type": resource,
        }
        step = "authenticate"
        try:
            principal = await self._principal(request)
            who.update(client_id=principal.client_id, subject=principal.subject)
            step = "authorise"
            decision = self._policies.decide(
                client_id=principal.client_id,
                scopes=frozenset(principal.scope.split()),
                action=action,
                target=target,
            )
            if not decision.allowed:
                raise Forbidden(
                    "The admin policies do not permit this.", detail="policy_deny"
                )
            permit = {**who, "interaction": f"admin.{action}.permit"}
            await self._write(
                self._event(request, route, 202, outcome="permitted", **permit)
            )
            step = "action"
            body = await _act(work, request, principal)
        except Refusal as refusal:
            event = self._event(
                request,
                route,
                refusal.status,
                outcome="refused",
                refusal_code=refusal.detail,
                refusal_step=step,
                **who,
            )
            await self._write_quietly(event)
            return _error_body(refusal)
        await self._write_quietly(
            self._event(request, route, 200, outcome="served", **who)
        )
        logger.warning("admin %s on %s by %s", action, target, who.get("client_id"))
        return JSONResponse(body, headers=_NO_STORE)

    async def refuse(self, request: Request, refusal: Refusal) -> Response:
        """A request no admin action took (no such endpoint, method or key
        kind): refused, and audited like every refusal."""
        request.state.correlation_id = str(uuid.uuid4())
        request.state.started = time.perf_counter()
        event = self._event(
            request,
            "(unmatched)",
            refusal.status,
            outcome="refused",
            refusal_code=refusal.detail,
            refusal_step="route",
            interaction="admin",
        )
        await self._write_quietly(event)
        return _error_body(refusal)

    async def _write_quietly(self, event: AuditEvent) -> None:
        try:
            await self._write(event)
        except DependencyUnavailable:
            logger.error("admin event for %s not recorded", event.route)

    async def view_config(
        self, request: Request, principal: Principal
    ) -> dict[str, Any]:
        return {"settings": masked(self.settings.model_dump(mode="json"))}

    async def reload_config(
        self, request: Request, principal: Principal
    ) -> dict[str, Any]:
        try:
            fresh = await to_thread.run_sync(self._reload)
        except KaitiakiError as exc:
            logger.error("settings reload refused: %s", exc)
            raise BadRequest(
                "The new settings were refused; see the log.", detail="reload_refused"
            ) from exc
        old = self.settings
        restart = [
            name
            for name in ("gateway", *_RESTART_SECTIONS)
            if name != "gateway" and getattr(fresh, name) != getattr(old, name)
        ]
        if (fresh.gateway.host, fresh.gateway.port) != (
            old.gateway.host,
            old.gateway.port,
        ):
            restart.append("gateway.host/port")
        if _upstream_tls_files(fresh) != _upstream_tls_files(old):
            restart.append("upstream_auth.client_cert/client_key/ca_file")
        try:
            await self._gateway.apply_settings(fresh)
        except KaitiakiError as exc:
            logger.error("settings reload refused: %s", exc)
            raise BadRequest(
                "The new settings were refused; see the log.", detail="reload_refused"
            ) from exc
        return {"reloaded": True, "restart_needed_for": restart}

    async def rotate(self, request: Request, principal: Principal) -> dict[str, Any]:
        kind = request.path_params["kind"]
        now = int(self._gateway.clock())
        try:
            rotation = await to_thread.run_sync(rotate_key, kind, self.settings, now)
        except KeyNotRotated as exc:
            raise BadRequest(
                f"The {kind} key is not rotated (see docs/configuration.md#keys).",
                detail="key_not_rotated",
            ) from exc
        return {
            "kind": rotation.kind,
            "new_kid": rotation.new_kid,
            "retired_kid": rotation.retired_kid,
            "verify_until": rotation.verify_until,
        }

    async def suspend(self, request: Request, principal: Principal) -> dict[str, Any]:
        client_id = request.path_params["client_id"]
        changed = self._gateway.suspensions.suspend(
            client_id, int(self._gateway.clock())
        )
        return {"client_id": client_id, "suspended": True, "changed": changed}

    async def resume(self, request: Request, principal: Principal) -> dict[str, Any]:
        client_id = request.path_params["client_id"]
        changed = self._gateway.suspensions.resume(client_id)
        return {"client_id": client_id, "suspended": False, "changed": changed}

    async def query_audit(
        self, request: Request, principal: Principal
    ) -> dict[str, Any]:
        cap = self.settings.admin.audit_query_limit
        raw = request.query_params.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= cap:
            raise BadRequest(f"limit must be a number from 1 to {cap}.", detail="limit")
        query = Query(client_id=request.query_params.get("client_id"))
        events = await to_thread.run_sync(
            lambda: search_events(self.settings.audit, query, limit=int(raw))
        )
        return {"events": events}


async def _act(work: Work, request: Request, principal: Principal) -> dict[str, Any]:
    try:
        return await work(request, principal)
    except Refusal:
        raise
    except (KaitiakiError, OSError, sqlite3.Error, ValueError) as exc:
        logger.error("admin action failed: %s", exc)
        raise DependencyUnavailable(
            "The admin action failed; see the gateway log.",
            detail=getattr(exc, "code", "action_failed"),
        ) from exc


def _route(plane: AdminPlane, path: str, action: str, work: Work, method: str) -> Route:
    async def endpoint(request: Request) -> Response:
        target = request.path_params.get("kind") or request.path_params.get(
            "client_id", "effective" if action in ("view", "reload") else "events"
        )
        if action == "rotate" and target not in KEY_KINDS:
            return await plane.refuse(
                request, NotFound("No such key kind.", detail="key_kind")
            )
        return await plane.run(request, action, path, str(target), work)

    return Route(path, endpoint, methods=[method])


def create_admin_app(
    gateway: Gateway, policies: AdminPolicies, reload: Reloader
) -> Starlette:
    """The admin ASGI app, sharing ``gateway``'s keys, sink and suspensions."""
    plane = AdminPlane(gateway, policies, reload)
    routes = [
        _route(plane, "/admin/config", "view", plane.view_config, "GET"),
        _route(plane, "/admin/config/reload", "reload", plane.reload_config, "POST"),
        _route(plane, "/admin/keys/{kind}/rotate", "rotate", plane.rotate, "POST"),
        _route(
            plane,
            "/admin/clients/{client_id}/suspend",
            "suspend",
            plane.suspend,
            "POST",
        ),
        _route(
            plane, "/admin/clients/{client_id}/resume", "resume", plane.resume, "POST"
        ),
        _route(plane, "/admin/audit", "query", plane.query_audit, "GET"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        # 405 as well: which methods a path takes is nobody's business.
        refusal = NotFound("No such admin endpoint.", detail="no_route")
        return await plane.refuse(request, refusal)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _upstream_tls_files(settings: Settings) -> tuple[str | None, ...]:
    auth = settings.upstream_auth
    return (auth.client_cert, auth.client_key, auth.ca_file)
