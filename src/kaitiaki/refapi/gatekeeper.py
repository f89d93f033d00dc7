"""Refuse requests that did not come through the gateway (optional).

With ``refapi.gateway_assertion_key`` set, every request must carry the
gateway's signed assertion (:mod:`kaitiaki.gateway.assertion`); anything else
is refused with 403 before a route runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kaitiaki.errors import Forbidden
from kaitiaki.fhir.outcome import refusal_outcome
from kaitiaki.gateway.assertion import AssertionVerifier

__all__ = ["GatewayOnly"]

_ASGI = Callable[..., Any]


class GatewayOnly:
    """ASGI wrapper: the assertion header must verify, or the reply is 403."""

    def __init__(
        self,
        app: _ASGI,
        verifier: AssertionVerifier,
        *,
        header: str = "kaitiaki-gateway-assertion",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app, self.verifier, self.clock = app, verifier, clock
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        values = [v for n, v in scope.get("headers", []) if n.lower() == self.header]
        token = values[0].decode("latin-1") if len(values) == 1 else None
        try:
            self.verifier.verify(token, int(self.clock()))
        except Forbidden as refusal:
            body = refusal_outcome(refusal)
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/fhir+json; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
