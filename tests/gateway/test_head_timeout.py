"""``gateway.head_timeout_seconds`` reaches the listener ``kaitiaki serve``
builds, in one process and (pickled) in worker processes."""

from __future__ import annotations

import pickle
import socket
import threading
import time
from typing import Any

import uvicorn

from kaitiaki.cli.serve import _gateway_config
from kaitiaki.gateway import listener
from kaitiaki.settings import parse_settings
from tests.conftest import free_port

SETTINGS = """
[gateway]
host = "127.0.0.1"
port = {port}
upstream = "http://127.0.0.1:9/fhir"
head_timeout_seconds = {timeout}
[auth]
issuer = "https://issuer.example"
audience = "https://gw.example/fhir"
"""


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _config(port: int, timeout: float) -> uvicorn.Config:
    settings = parse_settings(SETTINGS.format(port=port, timeout=timeout), source="t")
    return _gateway_config(hello, settings)


def test_the_setting_is_bound_to_the_listener_and_survives_pickling() -> None:
    config = _config(free_port(), 2.5)
    protocol = pickle.loads(pickle.dumps(config.http))  # as workers receive it
    assert protocol.func is listener.ListenerProtocol
    assert protocol.keywords == {"head_timeout": 2.5}


def test_a_slow_head_is_cut_off_after_the_configured_seconds() -> None:
    port = free_port()
    server = uvicorn.Server(_config(port, 1.0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=8) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: s")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        elapsed = time.monotonic() - started
        # The module default is 10 s: only the setting explains a cut at 1 s.
        assert listener.HEAD_TIMEOUT_SECONDS > 5
        assert 0.8 < elapsed < 4
        assert received.startswith(b"HTTP/1.1 408"), received[:80]
        assert b"X-Slow" not in received
    finally:
        server.should_exit = True
        thread.join(timeout=10)
