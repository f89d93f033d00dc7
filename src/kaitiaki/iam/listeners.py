"""The gateway and its admin listener, two uvicorn servers on one event loop.

They share one loop because the admin plane uses the gateway's HTTP session,
JWKS cache, audit sink and kill switch. TLS is optional on the admin
listener; with ``client_ca`` set, a client certificate is required (mTLS).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from functools import partial
from typing import Any

import uvicorn

from kaitiaki.gateway.listener import DEFAULT_MAX_HEAD_BYTES, ListenerProtocol
from kaitiaki.settings import AdminSettings, GatewaySettings

__all__ = [
    "admin_server_config",
    "gateway_head_bytes",
    "serve_together",
    "server_config",
]

logger = logging.getLogger("kaitiaki.iam.listeners")


def server_config(
    app: Any,
    host: str,
    port: int,
    *,
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
    head_timeout_seconds: float | None = None,
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn settings of every Kaitiaki listener."""
    # No access log: a request line can carry an NHI in its query string.
    # The protocol is named, so the parser the framing tests prove
    # (tests/gateway/test_framing.py) is the one that runs.
    protocol: Any = ListenerProtocol
    if head_timeout_seconds is not None:
        protocol = partial(ListenerProtocol, head_timeout=head_timeout_seconds)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        h11_max_incomplete_event_size=max_head_bytes,
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        # Our logging setup (and its redacting filter) for uvicorn's loggers too.
        log_config=None,
        **options,
    )


def gateway_head_bytes(gateway: GatewaySettings) -> int:
    """The listener's bound on a gateway request's head: room for the
    longest request line and header fields the gateway's own checks accept
    (they refuse larger ones with 414 and 431 themselves)."""
    lines = 4 * gateway.max_header_count + 64
    return max(
        DEFAULT_MAX_HEAD_BYTES,
        gateway.max_uri_bytes + gateway.max_header_bytes + lines,
    )


def admin_server_config(app: Any, admin: AdminSettings) -> uvicorn.Config:
    """The admin listener's server settings, with TLS and mTLS when configured."""
    tls: dict[str, Any] = {}
    if admin.tls_cert and admin.tls_key:
        tls = {"ssl_certfile": admin.tls_cert, "ssl_keyfile": admin.tls_key}
    if admin.client_ca:
        tls.update(ssl_ca_certs=admin.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return server_config(app, admin.host, admin.port, **tls)


async def _serve(servers: list[uvicorn.Server]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    # Server._serve is serve() without uvicorn's per-server signal capture,
    # which cannot serve two servers on one loop; signals are handled above.
    tasks = [asyncio.create_task(server._serve()) for server in servers]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def serve_together(
    gateway: uvicorn.Config, admin_app: Any, admin: AdminSettings
) -> None:
    """Run the gateway (its listener as configured) and the admin listener
    until a signal or a failure."""
    servers = [
        uvicorn.Server(gateway),
        uvicorn.Server(admin_server_config(admin_app, admin)),
    ]
    logger.info("admin listener on %s:%d", admin.host, admin.port)
    asyncio.run(_serve(servers))
