"""Kaitiaki's proxying with every control off: the cost of the hop itself.

The same ASGI server settings and the same pooled aiohttp client and header
rules as the gateway, but no canonical request, token, limit, validation,
filter or audit. It lives in ``bench/`` on purpose: a gateway setting that
turns every control off would be a dangerous switch to ship.

Run: ``python bench/passthrough.py PORT UPSTREAM_BASE [WORKERS]``.
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn

from kaitiaki.gateway.responses import security_headers
from kaitiaki.gateway.upstream import forward, outbound_headers


class PassThrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=256)
                    self.session = aiohttp.ClientSession(
                        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
                    )
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self.session is not None:
                        await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.session is not None
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), []).append(
                value.decode("latin-1")
            )
        path = scope["path"].removeprefix("/fhir")
        query = scope["query_string"].decode()
        url = self.upstream + path + (f"?{query}" if query else "")
        reply = await forward(
            self.session,
            scope["method"],
            url,
            outbound_headers(headers, {}),
            None,
            timeout=30,
        )
        out = [(k.encode(), v.encode("latin-1")) for k, v in reply.headers]
        out += [(k.encode(), v.encode()) for k, v in security_headers(cacheable=False)]
        out.append((b"content-length", str(len(reply.body)).encode()))
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": out}
        )
        await send({"type": "http.response.body", "body": reply.body})


def factory() -> PassThrough:
    return PassThrough(sys.argv[2])


if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[3]) if len(sys.argv) > 3 else 1
    uvicorn.run(
        "passthrough:factory",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        lifespan="on",
        http="httptools",  # the gateway's parser (kaitiaki.gateway.listener)
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
    )
