"""The Starlette application of the reference FHIR R4 API (no authentication).

It serves read, search, create, update and delete for a few resource types
under ``fhir_base``; the gateway in front of it does all access control.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaitiaki.errors import (
    BadRequest,
    ConfigError,
    MethodNotAllowed,
    NotFound,
    Refusal,
)
from kaitiaki.gateway.assertion import AssertionVerifier
from kaitiaki.iam import Secret, SecretStore
from kaitiaki.refapi.batch import run_bundle, searchset
from kaitiaki.refapi.bodies import (
    parse_bundle,
    parse_form,
    parse_resource,
    read_body,
)
from kaitiaki.refapi.gatekeeper import GatewayOnly
from kaitiaki.refapi.protect import FieldProtector
from kaitiaki.refapi.resources import (
    FHIR_JSON,
    StorageFailed,
    WriteConflict,
    capability_statement,
    check_id,
    check_type,
    outcome_body,
)
from kaitiaki.refapi.search import parse_search
from kaitiaki.refapi.seed import seed_resources
from kaitiaki.refapi.store import ResourceStore
from kaitiaki.settings import RefApiSettings

__all__ = ["create_app"]

logger = logging.getLogger("kaitiaki.refapi")

_HEADERS = {"Cache-Control": "no-store"}

Handler = Callable[[Request], Awaitable[Response]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fhir_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(
        content.encode(),
        status_code=status,
        headers={**_HEADERS, **(headers or {})},
        media_type=FHIR_JSON,
    )


def _refusal_response(refusal: Refusal) -> Response:
    return Response(
        outcome_body(refusal),
        status_code=refusal.status,
        headers={**_HEADERS, **refusal.headers},
        media_type=FHIR_JSON,
    )


def _guarded(handler: Handler) -> Handler:
    """Turn refusals and database failures into OperationOutcome replies."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refusal:
            return _refusal_response(refusal)
        except IntegrityError as exc:
            logger.warning("write conflict: %s", type(exc).__name__)
            return _refusal_response(WriteConflict("A concurrent write conflicted."))
        except SQLAlchemyError as exc:
            logger.error("database call failed: %s", exc)
            return _refusal_response(
                StorageFailed("The server could not complete this request.")
            )

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unmatched routes and methods get an OperationOutcome too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return _refusal_response(
            MethodNotAllowed("The method is not allowed here.", headers=headers)
        )
    return _refusal_response(NotFound("No such endpoint."))


def open_engine(database_url: str, password: Secret | None = None) -> Engine:
    """An engine for ``database_url``; a SQLite file's directory is created."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        if password is not None:
            url = url.set(password=password.reveal())
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(
        url,
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": 30},
    )


def _prepare(store: ResourceStore) -> None:
    store.create_tables()
    if store.is_empty():
        store.load(seed_resources(), _now())
        logger.info("seeded the reference API with synthetic data")
    reprotected = store.reprotect()
    if reprotected:
        logger.info("protected %d rows stored under older keys", reprotected)


class _RefApi:
    """The request handlers, sharing one store opened at start-up."""

    def __init__(self, settings: RefApiSettings, password: Secret | None) -> None:
        self._settings = settings
        self._password = password
        self._capability = capability_statement(_now())
        self._store: ResourceStore | None = None

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        engine = open_engine(self._settings.database_url, self._password)
        try:
            protector = FieldProtector.for_settings(self._settings)
            store = ResourceStore(engine, protector)
            await run_in_threadpool(_prepare, store)
            self._store = store
            yield
        finally:
            self._store = None
            engine.dispose()

    @property
    def store(self) -> ResourceStore:
        if self._store is None:
            raise StorageFailed("The server is not ready.")
        return self._store

    def base_url(self, request: Request) -> str:
        """The base URL clients use: the gateway's, when it says so.

        The reference API listens on loopback behind the gateway, which sets
        ``X-Forwarded-Host``/``-Proto``/``-Prefix`` itself (a client's copies
        never pass it), so links in replies name the public base.
        """
        host = request.headers.get("x-forwarded-host")
        proto = request.headers.get("x-forwarded-proto")
        prefix = request.headers.get("x-forwarded-prefix")
        if host and proto in ("http", "https") and prefix is not None:
            return f"{proto}://{host}{prefix}"
        return str(request.base_url).rstrip("/") + self._settings.fhir_base

    def _location(self, request: Request, resource: dict[str, Any]) -> str:
        version = resource["meta"]["versionId"]
        return (
            f"{self.base_url(request)}/{resource['resourceType']}/"
            f"{resource['id']}/_history/{version}"
        )

    async def metadata(self, request: Request) -> Response:
        return _fhir_response(self._capability)

    async def read(self, request: Request) -> Response:
        resource_type = check_type(request.path_params["resource_type"])
        resource_id = check_id(request.path_params["resource_id"])
        resource = await run_in_threadpool(self.store.read, resource_type, resource_id)
        if resource is None:
            raise NotFound("The resource was not found.")
        etag = f'W/"{resource["meta"]["versionId"]}"'
        return _fhir_response(resource, headers={"ETag": etag})

    async def search(self, request: Request) -> Response:
        resource_type = check_type(request.path_params["resource_type"])
        params = list(request.query_params.multi_items())
        if request.method == "POST":
            params += parse_form(request, await read_body(request))
        query = parse_search(resource_type, params)
        total, resources = await run_in_threadpool(self.store.search, query)

        bundle = searchset(
            self.base_url(request), resource_type, params, total, resources
        )
        return _fhir_response(bundle)

    async def create(self, request: Request) -> Response:
        resource_type = check_type(request.path_params["resource_type"])
        body = parse_resource(request, await read_body(request), resource_type)
        content = {k: v for k, v in body.items() if k not in ("resourceType", "id")}
        resource = {"resourceType": resource_type, "id": str(uuid.uuid4()), **content}
        stored, _ = await run_in_threadpool(
            self.store.write, resource_type, resource, _now()
        )
        headers = {"Location": self._location(request, stored), "ETag": 'W/"1"'}
        return _fhir_response(stored, 201, headers)

    async def update(self, request: Request) -> Response:
        resource_type = check_type(request.path_params["resource_type"])
        resource_id = check_id(request.path_params["resource_id"])
        resource = parse_resource(request, await read_body(request), resource_type)
        if resource.get("id") != resource_id:
            raise BadRequest(
                "The body's id must equal the id in the URL.", expression="id"
            )
        stored, created = await run_in_threadpool(
            self.store.write, resource_type, resource, _now()
        )
        headers = {"ETag": f'W/"{stored["meta"]["versionId"]}"'}
        if created:
            headers["Location"] = self._location(request, stored)
        return _fhir_response(stored, 201 if created else 200, headers)

    async def delete(self, request: Request) -> Response:
        resource_type = check_type(request.path_params["resource_type"])
        resource_id = check_id(request.path_params["resource_id"])
        await run_in_threadpool(self.store.delete, resource_type, resource_id)
        return Response(status_code=204, headers=_HEADERS)

    async def bundle(self, request: Request) -> Response:
        """``POST [base]``: a batch or transaction Bundle."""
        body = parse_bundle(request, await read_body(request))
        reply = await run_in_threadpool(
            run_bundle, self.store, body, _now(), self.base_url(request)
        )
        return _fhir_response(reply)

    async def type_level(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.create(request)
        return await self.search(request)

    async def instance(self, request: Request) -> Response:
        if request.method == "PUT":
            return await self.update(request)
        if request.method == "DELETE":
            return await self.delete(request)
        return await self.read(request)


def create_app(
    settings: RefApiSettings, *, secrets: SecretStore | None = None
) -> Starlette | GatewayOnly:
    """The reference FHIR API; its database is opened, created and seeded on start.

    ``secrets`` resolves ``database_password`` when the settings name one.
    """
    try:
        make_url(settings.database_url)
    except ArgumentError as exc:
        raise ConfigError(
            "refapi.database_url is not a database URL; use e.g. "
            "'sqlite:///var/refapi.sqlite' or 'postgresql+psycopg://user@host/db'"
        ) from exc

    password = None
    if settings.database_password is not None:
        if secrets is None:
            raise ConfigError("refapi.database_password needs a secret store")
        password = secrets.resolve(
            settings.database_password, setting="refapi.database_password"
        )
    api = _RefApi(settings, password)
    base = settings.fhir_base
    routes = [
        Route(f"{base}/metadata", _guarded(api.metadata), methods=["GET"]),
        Route(base, _guarded(api.bundle), methods=["POST"]),
        Route(
            f"{base}/{{resource_type}}/_search",
            _guarded(api.search),
            methods=["GET", "POST"],
        ),
        Route(
            f"{base}/{{resource_type}}/{{resource_id}}",
            _guarded(api.instance),
            methods=["GET", "PUT", "DELETE"],
        ),
        Route(
            f"{base}/{{resource_type}}",
            _guarded(api.type_level),
            methods=["GET", "POST"],
        ),
    ]
    app = Starlette(
        routes=routes,
        lifespan=api.lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    if settings.gateway_assertion_key is None:
        return app
    verifier = AssertionVerifier.from_file(
        settings.gateway_assertion_key, audience=settings.gateway_assertion_audience
    )
    return GatewayOnly(app, verifier)
