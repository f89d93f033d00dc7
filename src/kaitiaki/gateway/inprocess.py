"""The upstream as an ASGI application in the gateway's own process: what
:func:`kaitiaki.protect` puts behind the pipeline instead of an HTTP hop.

The application gets what an HTTP upstream would get, and no more: the
checked path and query, the allow-listed headers and the ones only the
gateway sets, the body once it has been read and validated. Its reply is
buffered, bounded and decoded as an HTTP upstream's is, so the same reply
checks (egress, dropped headers, hidden failures) apply. Whatever goes wrong
inside it (an exception, a reply never finished, no reply in time) is a 502
for the client, never its traceback; what is logged names the exception's
type and where it was raised, not its message, which may hold request data.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kaitiaki.bounded import decode_body
from kaitiaki.errors import ConfigError, UpstreamFailed
from kaitiaki.gateway.upstream import (
    MAX_REPLY_BYTES,
    UpstreamReply,
    kept_reply_headers,
    reply_too_large,
)
from kaitiaki.settings import Settings

__all__ = ["AppLifespan", "AsgiUpstream", "in_process"]

logger = logging.getLogger("kaitiaki.gateway.inprocess")

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

_DISCONNECT: Message = {"type": "http.disconnect"}
# What an HTTP reply head can carry (RFC 9110 5.1, 5.5): a name is a token, a
# value has no control character but tab, a final status is 200 to 599. Over
# HTTP anything else never parses; a server handed it in process drops the
# connection without a reply.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _where(exc: BaseException) -> str:
    """The exception's type and the place it was raised: enough to find it,
    without its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename}:{last.lineno} in {last.name}"


def _failed(detail: str) -> UpstreamFailed:
    return UpstreamFailed(
        "The upstream service failed to process the request.", detail=detail
    )


class _Exchange:
    """One request to the application and the reply it sends back."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent_body = False
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.pieces: list[bytes] = []
        self.size = 0
        self.finished = False  # the last piece of the body has been sent
        self.complete = asyncio.Event()  # finished, or the call has ended

    async def receive(self) -> Message:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        # Nothing more will come: the application hears of a disconnect
        # once its reply is complete, as from a client that has read it.
        await self.complete.wait()
        return dict(_DISCONNECT)

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self.status is not None:
                raise _failed("upstream_reply_started_twice")
            status = int(message["status"])
            headers = [
                (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                for name, value in message.get("headers", [])
            ]
            if not 200 <= status <= 599:
                raise _failed("upstream_bad_status")
            for name, value in headers:
                if not _TOKEN.fullmatch(name) or _CONTROL.search(value):
                    raise _failed("upstream_bad_header")
            self.status, self.headers = status, headers
        elif kind == "http.response.body":
            if self.status is None or self.finished:
                raise _failed("upstream_reply_out_of_order")
            piece = bytes(message.get("body", b""))
            self.size += len(piece)
            if self.size > MAX_REPLY_BYTES:
                raise reply_too_large()
            self.pieces.append(piece)
            if not message.get("more_body", False):
                self.finished = True
                self.complete.set()


class AsgiUpstream:
    """Requests to an ASGI application, called in this process."""

    def __init__(self, app: ASGIApp, lifespan: AppLifespan | None = None) -> None:
        self.app = app
        self.lifespan = lifespan
        # Calls still running once the gateway is done with them: work after
        # a finished reply (background tasks), or a call cancelled.
        self._running: set[asyncio.Task[None]] = set()

    def _scope(self, method: str, url: str, headers: dict[str, str]) -> dict[str, Any]:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        port = parts.port or (443 if scheme == "https" else 80)
        # The path was canonicalised by the gateway: printable ASCII, with
        # only unreserved characters decoded, so it is its own raw form.
        path = parts.path or "/"
        # Encoded as aiohttp encodes them for an HTTP upstream: UTF-8.
        wire = [
            (name.lower().encode("latin-1"), value.encode("utf-8"))
            for name, value in headers.items()
            if name.lower() != "host"
        ]
        wire.insert(0, (b"host", parts.netloc.encode("latin-1")))
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": path,
            "raw_path": path.encode("ascii"),
            "root_path": "",
            "query_string": parts.query.encode("ascii"),
            "headers": wire,
            # The application learns who the caller is from the headers only
            # the gateway sets, as an HTTP upstream would, not from an address.
            "client": None,
            "server": (parts.hostname or "", port),
            "extensions": {},
        }
        if self.lifespan is not None and self.lifespan.state is not None:
            scope["state"] = dict(self.lifespan.state)
        return scope

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float,
    ) -> UpstreamReply:
        exchange = _Exchange(body or b"")
        scope = self._scope(method, url, headers)
        call = asyncio.create_task(self._call(scope, exchange))
        call.add_done_callback(lambda _: exchange.complete.set())
        try:
            async with asyncio.timeout(timeout):
                await exchange.complete.wait()
        except TimeoutError as exc:
            self._cancel(call)
            logger.error("the protected application did not reply in %.1f s", timeout)
            raise UpstreamFailed(
                "The upstream service did not reply in time.",
                detail="upstream_timeout",
            ) from exc
        except BaseException:
            self._cancel(call)
            raise
        if exchange.finished and not call.done():
            # The reply is the client's, as an HTTP upstream's is once its
            # last piece is sent; what the application does after it
            # (background tasks) runs on, and a failure there is only logged.
            self._keep(call)
            return _reply(exchange)
        # The call has ended: an exception it ended with is a 502 even after
        # a finished reply (Starlette's error middleware sends a 500 of its
        # own, then raises).
        failure = None if call.cancelled() else call.exception()
        if isinstance(failure, UpstreamFailed):
            raise failure
        if failure is not None:
            logger.error("the protected application raised %s", _where(failure))
            raise _failed("upstream_exception") from failure
        if exchange.status is None:
            raise _failed("upstream_no_reply")
        if not exchange.finished:
            raise _failed("upstream_reply_incomplete")
        return _reply(exchange)

    async def _call(self, scope: Scope, exchange: _Exchange) -> None:
        await self.app(scope, exchange.receive, exchange.send)

    def _cancel(self, call: asyncio.Task[None]) -> None:
        call.cancel()
        self._keep(call)

    def _keep(self, call: asyncio.Task[None]) -> None:
        if call.done():
            self._ended(call)
        else:
            self._running.add(call)
            call.add_done_callback(self._ended)

    def _ended(self, call: asyncio.Task[None]) -> None:
        self._running.discard(call)
        if call.cancelled():
            return
        failure = call.exception()
        if failure is not None and not isinstance(failure, UpstreamFailed):
            logger.error(
                "the protected application raised %s after its reply",
                _where(failure),
            )

    async def close(self, timeout: float = 30) -> None:
        """Let calls still running end (background work), then cancel them."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=timeout)
            for call in pending:
                call.cancel()


def _reply(exchange: _Exchange) -> UpstreamReply:
    assert exchange.status is not None
    raw = b"".join(exchange.pieces)
    coding = ", ".join(
        value for name, value in exchange.headers if name.lower() == "content-encoding"
    )
    try:
        payload = decode_body(coding, raw, MAX_REPLY_BYTES)
    except aiohttp.ClientPayloadError as exc:
        raise _failed("upstream_bad_coding") from exc
    if len(payload) > MAX_REPLY_BYTES:
        raise reply_too_large()
    return UpstreamReply(exchange.status, kept_reply_headers(exchange.headers), payload)


class AppLifespan:
    """The application's own lifespan, run around the gateway's: its startup
    completes before the gateway starts (so the gateway may read its
    CapabilityStatement), its shutdown begins after the gateway stops.

    An application that does not speak the lifespan protocol (it raises on
    the scope, or returns at once) is served without one, as uvicorn serves
    it; one that reports its startup failed stops the gateway's startup.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] | None = None
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = False

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._to_app.get, self._from_app.put)
        except Exception as exc:
            where = _where(exc)
            if self._supported:
                logger.error("the protected application's lifespan raised %s", where)
            else:  # it has none
                logger.info("the protected application has no lifespan (%s)", where)
        finally:
            await self._from_app.put(None)

    async def startup(self) -> None:
        self.state = {}
        self._task = asyncio.create_task(self._run())
        await self._to_app.put({"type": "lifespan.startup"})
        reply = await self._from_app.get()
        if reply is None:
            return  # no lifespan: served without one
        self._supported = True
        if reply.get("type") != "lifespan.startup.complete":
            raise ConfigError("the protected application's startup failed")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        if self._supported and not self._task.done():
            await self._to_app.put({"type": "lifespan.shutdown"})
            while (reply := await self._from_app.get()) is not None:
                if reply.get("type") == "lifespan.shutdown.failed":
                    logger.error("the protected application's shutdown failed")
                if reply.get("type", "").startswith("lifespan.shutdown"):
                    break
        await asyncio.wait({self._task}, timeout=30)
        self._task = None


def in_process(settings: Settings) -> Settings:
    """``settings`` with every upstream pointing at the public URL itself: the
    application serves the paths its callers use (FHIR under ``fhir_base``,
    REST routes under their prefixes), and its links name the public host."""
    gateway = settings.gateway
    origin = gateway.base_url[: -len(gateway.fhir_base)]
    rest = tuple(
        route.model_copy(update={"upstream": origin + route.prefix})
        for route in settings.rest
    )
    return settings.model_copy(
        update={
            "gateway": gateway.model_copy(update={"upstream": gateway.base_url}),
            "rest": rest,
        }
    )
