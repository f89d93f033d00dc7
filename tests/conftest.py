"""Shared fixtures: loopback servers in threads, signing keys, free ports."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from kaitiaki.gateway.listener import ListenerProtocol


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadServer:
    """An ASGI app served by uvicorn on a loopback port in a background thread."""

    def __init__(
        self, app: Any, port: int | None = None, *, stock: bool = False
    ) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            # As `kaitiaki serve` runs it; ``stock``: uvicorn's own protocol,
            # as an application's server runs kaitiaki.protect.
            http="auto" if stock else ListenerProtocol,
            lifespan="on",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def backends_required() -> bool:
    """Under CI a missing PostgreSQL or Redis fails the run instead of skipping."""
    return os.environ.get("KAITIAKI_REQUIRE_BACKENDS") == "1" or bool(
        os.environ.get("CI")
    )


@pytest.fixture
def loopback_server() -> Iterator[type[ThreadServer]]:
    yield ThreadServer
