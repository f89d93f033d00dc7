"""``kaitiaki.protect`` (defined here): the gateway's controls as ASGI middleware.

A Python API (FastAPI, Starlette, any ASGI application) gets the same
pipeline ``kaitiaki serve`` runs — canonical request, traffic filter,
authentication, authorisation, limits, validation, one audit event per
request — with no network hop: an admitted request is handed to the
application in the same process, and its reply passes the same checks on
the way out. What the application sees is what an HTTP upstream would see:
the checked path and query, the allow-listed headers, the identity headers
only the gateway sets (``Kaitiaki-Client-Id``, ``Request-Context``,
``X-Correlation-Id``), never the caller's credential or cookies.

Run the result under any ASGI server, with its lifespan on (uvicorn's
default): the gateway opens its clients and audit trail there, and runs the
application's own lifespan inside its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaitiaki.gateway.app import Gateway, Receive, Send
from kaitiaki.gateway.inprocess import ASGIApp
from kaitiaki.settings import Settings, load_settings

__all__ = ["ProtectedApp", "protect"]


class ProtectedApp(Gateway):
    """The gateway with an application behind it instead of an upstream URL.

    A startup that fails (the application's, or the gateway's: keys, audit
    trail, settings) is reported to the server as ``lifespan.startup.failed``,
    so that the server stops rather than serve without the controls; what
    had started, the application's lifespan included, is shut down first.
    """

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    # What had started (the application, the gateway's
                    # clients) is stopped: the server exits without a
                    # shutdown message.
                    try:
                        await self.shutdown()
                    finally:
                        await send(
                            {"type": "lifespan.startup.failed", "message": str(exc)}
                        )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def protect(app: ASGIApp, settings: Settings | str | Path, **options: Any) -> Gateway:
    """``app`` behind Kaitiaki's controls, as an ASGI application.

    ``settings`` is a :class:`~kaitiaki.settings.Settings` or the path of a
    settings file (owner-only, as for ``kaitiaki serve``); ``gateway.upstream``
    and the REST routes' ``upstream`` may be left out, since requests go to
    ``app``. ``options`` are passed on to :class:`~kaitiaki.gateway.app.Gateway`
    (``clock``, ``environ`` for ``env:`` secret references).
    """
    if not isinstance(settings, Settings):
        settings = load_settings(settings)
    return ProtectedApp(settings, app=app, **options)
