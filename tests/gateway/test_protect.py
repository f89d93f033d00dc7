"""kaitiaki.protect: the gateway's controls as ASGI middleware around an
application in the same process, served by a stock uvicorn."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import kaitiaki
from kaitiaki.errors import ConfigError
from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import Settings, parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import StandIn, gateway_toml

FHIR = "application/fhir+json"
DUPLICATE_MEMBERS = b'{"resourceType":"Patient","active":true,"active":false}'


@dataclass
class App:
    """A FHIR-ish application that records what reaches it."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    lifespan: list[str] = field(default_factory=list)

    def starlette(self) -> Starlette:
        async def patients(request: Request) -> Response:
            body = await request.body()
            self.seen.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": dict(request.headers),
                    "body": body,
                    "state": getattr(request.state, "opened", None),
                    "client": request.client,
                }
            )
            headers = {"set-cookie": "session=1", "server": "internal/1.0"}
            if request.method == "POST":
                headers["location"] = f"{request.base_url}fhir/Patient/new/_history/1"
                return JSONResponse(
                    {"resourceType": "Patient", "id": "new"},
                    201,
                    headers=headers,
                    media_type=FHIR,
                )
            return JSONResponse(
                {"resourceType": "Bundle", "type": "searchset", "total": 0},
                headers=headers,
                media_type=FHIR,
            )

        async def observation(request: Request) -> Response:
            # o-<patient>-<n>: an Observation about that patient.
            self.seen.append({"path": request.url.path})
            resource_id = request.path_params["id"]
            patient = resource_id.split("-")[1]
            return JSONResponse(
                {
                    "resourceType": "Observation",
                    "id": resource_id,
                    "status": "final",
                    "code": {"text": "pulse"},
                    "subject": {"reference": f"Patient/{patient}"},
                },
                media_type=FHIR,
            )

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
            self.lifespan.append("startup")
            yield {"opened": "by-lifespan"}
            self.lifespan.append("shutdown")

        return Starlette(
            routes=[
                Route("/fhir/Patient", patients, methods=["GET", "POST"]),
                Route("/fhir/Patient/{id}", patients, methods=["GET"]),
                Route("/fhir/Encounter/{id}", observation),
                *self.odd_routes(),
            ],
            lifespan=lifespan,
        )

    def odd_routes(self) -> list[Route]:
        """Replies an upstream should not give: late, failing, slow, coded."""

        async def later(request: Request) -> Response:
            # Starlette runs background tasks after the reply, in the same
            # call of the application: the caller must not wait for them.
            self.seen.append({"path": request.url.path})

            async def work() -> None:
                await asyncio.sleep(1.5)
                if request.path_params["id"] == "fails":
                    raise RuntimeError("Aroha ZZZ0016 background failure")
                self.lifespan.append("background done")

            return JSONResponse(
                {"resourceType": "Basic", "id": "b1", "code": {"text": "x"}},
                media_type=FHIR,
                background=BackgroundTask(work),
            )

        async def boom(request: Request) -> Response:
            self.seen.append({"path": request.url.path})
            raise RuntimeError("Aroha Test-Patient ZZZ0016 broke the database")

        async def slow(request: Request) -> Response:
            self.seen.append({"path": request.url.path})
            await asyncio.sleep(10)
            return Response(b"late")

        async def zipped(request: Request) -> Response:
            self.seen.append({"path": request.url.path})
            document = json.dumps({"resourceType": "Observation", "id": "o1"})
            packed = gzip.compress(document.encode())
            if request.path_params["id"] == "cut":
                packed = packed[:-12]
            return Response(
                packed, headers={"content-encoding": "gzip", "content-type": FHIR}
            )

        return [
            Route("/fhir/Basic/{id}", later),
            Route("/fhir/Procedure/boom", boom),
            Route("/fhir/Procedure/slow", slow),
            Route("/fhir/Observation/{id:str}", zipped),
        ]


async def unfinished(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI application that starts a reply and never ends it."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


def protected_settings(standin: StandIn, tmp_path: Path, extra: str = "") -> Settings:
    toml = gateway_toml(standin.url, "UNUSED", tmp_path, extra)
    # No upstream at all: the application is the upstream.
    toml = toml.replace('upstream = "UNUSED/fhir"\n', "")
    assert "upstream" not in toml
    return parse_settings(toml, source="test")


@dataclass
class Protected:
    client: httpx.Client
    app: App
    audit_path: Path

    def events(self) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text().splitlines()
        records = [json.loads(line) for line in lines]
        return [r for r in records if r["event_type"] == "request"]


@pytest.fixture
def protected(standin: StandIn, tmp_path: Path) -> Iterator[Protected]:
    app = App()
    settings = protected_settings(standin, tmp_path)
    wrapped = kaitiaki.protect(app.starlette(), settings)
    with (
        ThreadServer(wrapped, stock=True) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        yield Protected(client, app, tmp_path / "audit.jsonl")
    assert app.lifespan[0] == "startup" and app.lifespan[-1] == "shutdown"


def startup_replies(wrapped: Gateway) -> list[str]:
    """What the wrapped application tells a server at its lifespan startup."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(wrapped({"type": "lifespan"}, receive, send))
    return [message["type"] for message in sent]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": FHIR}


def test_an_admitted_request_reaches_the_application_as_an_upstream_would(
    protected: Protected, standin: StandIn
) -> None:
    reply = protected.client.get(
        "/fhir/Patient?family=Smith&_count=2", headers=bearer(standin.token())
    )
    assert reply.status_code == 200
    assert reply.json() == {"resourceType": "Bundle", "type": "searchset", "total": 0}
    [seen] = protected.app.seen
    assert seen["method"] == "GET"
    assert seen["path"] == "/fhir/Patient"
    assert seen["query"] == "family=Smith&_count=2"
    headers = seen["headers"]
    assert "authorization" not in headers
    assert headers["kaitiaki-client-id"] == "svc"
    assert headers["x-correlation-id"] == reply.headers["x-correlation-id"]
    assert headers["host"] == "gw.example"
    assert seen["client"] is None  # who calls is told by the gateway's headers
    # The application's lifespan ran, and its state reaches its requests.
    assert seen["state"] == "by-lifespan"
    # What never reaches a client from an upstream does not from the app.
    assert "set-cookie" not in reply.headers
    assert "internal/1.0" not in reply.headers.get("server", "")
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in reply.headers["cache-control"]
    assert reply.headers["expires"] == "0"
    [event] = protected.events()
    assert event["outcome"] == "served"
    assert event["client_id"] == "svc"


def test_a_create_passes_its_checked_body_and_a_public_location(
    protected: Protected, standin: StandIn
) -> None:
    token = standin.token({"scope": "system/*.cruds"})
    patient = {"resourceType": "Patient", "active": True}
    reply = protected.client.post(
        "/fhir/Patient",
        content=json.dumps(patient).encode(),
        headers={**bearer(token), "Content-Type": FHIR},
    )
    assert reply.status_code == 201
    assert reply.headers["location"].startswith("https://gw.example/fhir/Patient/new")
    [seen] = protected.app.seen
    assert json.loads(seen["body"]) == patient


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/fhir/Patient", {}, None),  # no token
        ("/fhir/Patient", {"Cookie": "session=abc"}, None),
        ("/fhir/Patient", {"X-HTTP-Method-Override": "DELETE"}, None),
        ("/fhir/Patient?name=%3Cscript%3Ealert(1)%3C/script%3E", {}, None),
        ("/fhir/Patient?family=x%27%20OR%201%3D1--", {}, None),
        ("/fhir/Patient/..%2f..%2fetc%2fpasswd", {}, None),
        ("/fhir/Patient?_method=DELETE", {}, None),
        (
            "/fhir/Patient",
            {"Content-Type": FHIR},
            b'{"resourceType":"Patient","a":1,"a":2}',
        ),
    ],
)
def test_refusals_never_reach_the_application(
    protected: Protected,
    standin: StandIn,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    sent = dict(headers)
    if path == "/fhir/Patient" and not headers:
        sent["Accept"] = FHIR  # the no-token case
    else:
        token = standin.token({"scope": "system/*.cruds"})
        sent = {**bearer(token), **headers}
    method = "POST" if body is not None else "GET"
    reply = protected.client.request(method, path, headers=sent, content=body)
    assert 400 <= reply.status_code < 500, reply.text
    outcome = reply.json()
    assert outcome["resourceType"] == "OperationOutcome"
    for echoed in ("script", "passwd", "OR 1=1", "session=abc"):
        assert echoed not in reply.text
    assert protected.app.seen == []
    [event] = protected.events()
    assert event["outcome"] == "refused"


def test_limits_count_before_the_application(
    protected: Protected, standin: StandIn
) -> None:
    token = standin.token({"client_id": "limited", "sub": "limited"})
    statuses = [
        protected.client.get("/fhir/Patient", headers=bearer(token)).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert len(protected.app.seen) == 3


def test_an_application_fault_is_a_502_that_shows_and_logs_nothing_of_it(
    protected: Protected, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reply = protected.client.get(
        "/fhir/Procedure/boom", headers=bearer(standin.token())
    )
    assert reply.status_code == 502
    assert reply.json()["resourceType"] == "OperationOutcome"
    for leaked in ("RuntimeError", "ZZZ0016", "Traceback", "database"):
        assert leaked not in reply.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RuntimeError at" in logged
    assert "ZZZ0016" not in logged and "Aroha" not in logged
    [event] = protected.events()
    assert event["status"] == 502


def test_an_application_that_does_not_reply_in_time_is_a_502(
    standin: StandIn, tmp_path: Path
) -> None:
    app = App()
    settings = protected_settings(standin, tmp_path)
    settings = settings.model_copy(
        update={
            "gateway": settings.gateway.model_copy(
                update={"upstream_timeout_seconds": 0.5}
            )
        }
    )
    with (
        ThreadServer(kaitiaki.protect(app.starlette(), settings), stock=True) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        reply = client.get("/fhir/Procedure/slow", headers=bearer(standin.token()))
        assert reply.status_code == 502
        assert reply.elapsed.total_seconds() < 5
        assert reply.json()["resourceType"] == "OperationOutcome"


def test_a_reply_left_unfinished_is_a_502(standin: StandIn, tmp_path: Path) -> None:
    settings = protected_settings(standin, tmp_path)
    settings = settings.model_copy(
        update={
            "gateway": settings.gateway.model_copy(
                update={"upstream_timeout_seconds": 1.0}
            )
        }
    )
    with (
        ThreadServer(kaitiaki.protect(unfinished, settings), stock=True) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        reply = client.get("/fhir/Patient", headers=bearer(standin.token()))
        assert reply.status_code == 502
        assert reply.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("resource_id", "status"), [("o1", 200), ("cut", 502)])
def test_a_compressed_reply_is_decoded_or_refused_when_cut_short(
    protected: Protected, standin: StandIn, resource_id: str, status: int
) -> None:
    reply = protected.client.get(
        f"/fhir/Observation/{resource_id}", headers=bearer(standin.token())
    )
    assert reply.status_code == status
    if status == 200:
        assert reply.json() == {"resourceType": "Observation", "id": "o1"}
        assert "content-encoding" not in reply.headers
    else:
        assert reply.json()["resourceType"] == "OperationOutcome"


def test_a_failed_application_startup_fails_the_servers_startup(
    standin: StandIn, tmp_path: Path
) -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    wrapped = kaitiaki.protect(
        Starlette(routes=[], lifespan=broken), protected_settings(standin, tmp_path)
    )
    # What a server is told, so that it exits instead of serving (uvicorn
    # logs "Application startup failed. Exiting.").
    assert startup_replies(wrapped) == ["lifespan.startup.failed"]


def test_serve_still_needs_an_upstream(standin: StandIn, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.upstream"):
        Gateway(protected_settings(standin, tmp_path))


def test_protect_takes_a_settings_file_only_its_owner_may_read(
    standin: StandIn, tmp_path: Path
) -> None:
    path = tmp_path / "kaitiaki.toml"
    toml = gateway_toml(standin.url, "UNUSED", tmp_path)
    path.write_text(toml.replace('upstream = "UNUSED/fhir"\n', ""))
    path.chmod(0o644)
    with pytest.raises(ConfigError):
        kaitiaki.protect(App().starlette(), path)
    path.chmod(0o600)
    wrapped = kaitiaki.protect(App().starlette(), path)
    assert wrapped.settings.gateway.upstream == "https://gw.example/fhir"


def test_a_patient_token_sees_only_its_patients_data_from_the_application(
    protected: Protected, standin: StandIn
) -> None:
    # The reply check runs on the application's reply as on an upstream's.
    claims = {"scope": "patient/*.rs", "patient": "pat1", "sub": "user-1", "acr": "3"}
    headers = bearer(standin.token(claims))
    other = protected.client.get("/fhir/Encounter/o-pat2-1", headers=headers)
    assert other.status_code == 404
    assert "pat2" not in other.text
    own = protected.client.get("/fhir/Encounter/o-pat1-1", headers=headers)
    assert own.status_code == 200
    assert own.json()["subject"] == {"reference": "Patient/pat1"}


def test_concurrent_requests_each_get_their_own_reply(
    protected: Protected, standin: StandIn
) -> None:
    headers = bearer(standin.token())
    ids = [f"o-pat{n}-{n}" for n in range(24)]

    def fetch(resource_id: str) -> str:
        reply = protected.client.get(f"/fhir/Encounter/{resource_id}", headers=headers)
        assert reply.status_code == 200
        return str(reply.json()["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(fetch, ids)) == ids
    assert len(protected.app.seen) == len(ids)


def test_a_websocket_never_reaches_the_application(
    standin: StandIn, tmp_path: Path
) -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["type"])

    wrapped = kaitiaki.protect(app, protected_settings(standin, tmp_path))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/fhir/ws", "headers": []}
    asyncio.run(wrapped(scope, receive, send))
    # Not accepted: the server refuses the handshake (uvicorn answers 403).
    assert called == []
    assert all(m["type"] != "websocket.accept" for m in sent)


@pytest.mark.parametrize("outcome", ["done", "fails"])
def test_work_after_the_reply_does_not_hold_the_caller(
    standin: StandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture, outcome: str
) -> None:
    caplog.set_level(logging.INFO)
    app = App()
    wrapped = kaitiaki.protect(app.starlette(), protected_settings(standin, tmp_path))
    with (
        ThreadServer(wrapped, stock=True) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        reply = client.get(f"/fhir/Basic/{outcome}", headers=bearer(standin.token()))
        assert reply.status_code == 200
        assert reply.elapsed.total_seconds() < 1.0
    # The server's shutdown waited for the background work to end.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    if outcome == "done":
        assert "background done" in app.lifespan
    else:
        assert "RuntimeError at" in logged and "after its reply" in logged
        assert "ZZZ0016" not in logged


def replying(status: Any, headers: list[tuple[bytes, bytes]]) -> Any:
    """A raw ASGI application whose whole reply is the head it is given."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": b'{"resourceType":"Bundle"}'})

    return app


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, [(b"x-note", b"one\r\nset-cookie: session=abc")]),
        (200, [(b"x-note", b"nul\x00byte")]),
        (200, [(b"x note", b"space in the name")]),
        (200, [(b"", b"empty name")]),
        (199, []),
        (101, [(b"upgrade", b"websocket")]),
        (0, []),
        (999, []),
        (1000, []),
    ],
)
def test_a_reply_head_no_server_could_send_is_a_502(
    standin: StandIn,
    tmp_path: Path,
    status: int,
    headers: list[tuple[bytes, bytes]],
) -> None:
    # Over HTTP such a head never parses; in process it reached the server,
    # which dropped the connection without any reply.
    settings = protected_settings(standin, tmp_path)
    with (
        ThreadServer(
            kaitiaki.protect(replying(status, headers), settings), stock=True
        ) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        reply = client.get("/fhir/Patient", headers=bearer(standin.token()))
    assert reply.status_code == 502
    assert reply.json()["resourceType"] == "OperationOutcome"
    assert "session=abc" not in reply.text
    assert "set-cookie" not in reply.headers
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    [event] = [e for e in map(json.loads, lines) if e["event_type"] == "request"]
    assert event["status"] == 502


def test_a_client_id_outside_latin_1_reaches_the_application_as_utf_8(
    protected: Protected, standin: StandIn
) -> None:
    # What aiohttp sends an HTTP upstream; encoding it as latin-1 was a 500.
    token = standin.token({"client_id": "whānau-app", "sub": "whānau-app"})
    reply = protected.client.get("/fhir/Patient", headers=bearer(token))
    assert reply.status_code == 200
    [seen] = protected.app.seen
    sent = seen["headers"]["kaitiaki-client-id"].encode("latin-1")
    assert sent.decode("utf-8") == "whānau-app"


@pytest.mark.parametrize("client_id", ["svc\r\nx-role: admin", "svc\x00", "svc\x85"])
def test_a_client_id_with_control_characters_is_refused(
    protected: Protected, standin: StandIn, client_id: str
) -> None:
    # It went into Kaitiaki-Client-Id: a header value no HTTP upstream could
    # be sent (aiohttp refuses, a 500), handed as it was to the application.
    token = standin.token({"client_id": client_id, "sub": client_id})
    reply = protected.client.get("/fhir/Patient", headers=bearer(token))
    assert reply.status_code == 401
    assert reply.json()["resourceType"] == "OperationOutcome"
    assert "x-role" not in reply.text
    assert protected.app.seen == []
    [event] = protected.events()
    assert event["outcome"] == "refused"


def test_work_after_a_finished_reply_neither_delays_nor_fails_it(
    standin: StandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A background task runs after the reply has gone to the client, as
    # from an HTTP upstream: it held the reply back until it ended, and its
    # failure, or its taking longer than upstream_timeout_seconds, was a 502.
    finished: list[str] = []

    async def slow_then_fail() -> None:
        await asyncio.sleep(1.5)
        finished.append("ran")
        raise RuntimeError("Aroha Test-Patient ZZZ0016 could not be e-mailed")

    async def patients(request: Request) -> Response:
        return JSONResponse(
            {"resourceType": "Bundle", "type": "searchset", "total": 0},
            media_type=FHIR,
            background=BackgroundTask(slow_then_fail),
        )

    app = Starlette(routes=[Route("/fhir/Patient", patients)])
    settings = protected_settings(standin, tmp_path)
    settings = settings.model_copy(
        update={
            "gateway": settings.gateway.model_copy(
                update={"upstream_timeout_seconds": 1.0}
            )
        }
    )
    caplog.set_level(logging.INFO)
    with (
        ThreadServer(kaitiaki.protect(app, settings), stock=True) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        reply = client.get("/fhir/Patient", headers=bearer(standin.token()))
        assert reply.status_code == 200
        assert reply.elapsed.total_seconds() < 1
        assert reply.json()["resourceType"] == "Bundle"
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert finished == ["ran"]
        time.sleep(0.1)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RuntimeError at" in logged
    assert "ZZZ0016" not in logged


def test_a_failed_gateway_startup_still_shuts_the_application_down(
    standin: StandIn, tmp_path: Path
) -> None:
    # The application started, then the gateway's own startup failed (here:
    # no CapabilityStatement to read): the application's shutdown (its pools,
    # its files) never ran, and the gateway's clients stayed open.
    app = App()
    settings = protected_settings(
        standin, tmp_path, '[validation]\nsearch_parameters = "capability"\n'
    )
    wrapped = kaitiaki.protect(app.starlette(), settings)
    assert startup_replies(wrapped) == ["lifespan.startup.failed"]
    assert app.lifespan == ["startup", "shutdown"]
    assert wrapped.session is not None and wrapped.session.closed


def test_headers_the_reply_names_in_connection_never_reach_the_client(
    standin: StandIn, tmp_path: Path
) -> None:
    # Hop-by-hop by the reply's own word (RFC 9110 §7.6.1), in process as
    # over HTTP (both go through kept_reply_headers).
    head = [
        (b"content-type", FHIR.encode()),
        (b"connection", b"keep-alive, X-Internal-Route"),
        (b"x-internal-route", b"db-primary.internal"),
        (b"etag", b'W/"1"'),
    ]
    settings = protected_settings(standin, tmp_path)
    with (
        ThreadServer(
            kaitiaki.protect(replying(200, head), settings), stock=True
        ) as srv,
        httpx.Client(base_url=srv.url, timeout=15) as client,
    ):
        reply = client.get("/fhir/Patient", headers=bearer(standin.token()))
    assert reply.status_code == 200
    assert "x-internal-route" not in reply.headers
    assert "db-primary" not in str(reply.headers)
    assert reply.headers["etag"] == 'W/"1"'


def test_a_gateway_built_with_an_application_serves_it_at_the_public_paths(
    standin: StandIn, tmp_path: Path
) -> None:
    # Without protect(): the same settings rewrite, so the application is
    # not asked for /Patient on an empty Host.
    app = App()
    gateway = Gateway(protected_settings(standin, tmp_path), app=app.starlette())
    assert gateway.settings.gateway.upstream == "https://gw.example/fhir"
    with (
        ThreadServer(gateway, stock=True) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        reply = client.get("/fhir/Patient/p1", headers=bearer(standin.token()))
    assert reply.status_code == 200
    [seen] = app.seen
    assert (seen["path"], seen["headers"]["host"]) == ("/fhir/Patient/p1", "gw.example")
