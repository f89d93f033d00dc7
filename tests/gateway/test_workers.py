"""``gateway.workers > 1``: what several processes on one socket cannot offer
is refused at start, with the setting named, before any worker runs."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaitiaki.cli.serve import _serve_workers
from kaitiaki.demo import wait_for_port
from kaitiaki.errors import KaitiakiError
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import Recorder, StandIn, gateway_toml, upstream_app


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("[admin]\nenabled = true\nport = 0\n", "[admin] enabled"),
        ("[metrics]\nenabled = true\nport = 0\n", "[metrics] enabled"),
    ],
)
def test_workers_refuse_what_one_process_must_hold(
    tmp_path: Path, extra: str, named: str
) -> None:
    toml = gateway_toml("https://issuer.example", "http://127.0.0.1:9", tmp_path)
    toml = toml.replace("[gateway]\n", "[gateway]\nworkers = 2\n", 1) + extra
    settings = parse_settings(toml, source="test")
    assert settings.gateway.workers == 2
    with pytest.raises(KaitiakiError, match=named.replace("[", r"\[")):
        _serve_workers(argparse.Namespace(config=None), settings)


WORKERS = """
[gateway]
host = "127.0.0.1"
port = {port}
public_url = "https://gw.example"
upstream = "{upstream}/fhir"
instance = "pool"
workers = 2
[auth]
issuer = "{issuer}"
audience = "https://gw.example/fhir"
algorithms = ["ES256"]
[audit]
sink = "sqlite"
path = "{root}/audit.sqlite"
"""


def _burst(port: int, count: int) -> list[bytes]:
    """``count`` keep-alive connections opened at once, then one request each."""
    request = b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    try:
        for sock in sockets:
            sock.settimeout(10)
            sock.sendall(request)
        return [sock.recv(65536) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _instances(root: Path) -> list[str]:
    with sqlite3.connect(root / "audit.sqlite") as db:
        rows = db.execute(
            "SELECT instance FROM audit_event WHERE route = '/fhir/metadata' "
            "ORDER BY rowid"
        )
        return [row[0] for row in rows]


def _until_both_serve(port: int, root: Path) -> set[str]:
    """The two instances serving once both workers listen (bounded wait)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = len(_instances(root))
        replies = _burst(port, 24)
        assert all(reply.startswith(b"HTTP/1.1 200") for reply in replies)
        latest = set(_instances(root)[seen:])
        if len(latest) == 2:
            return latest
        time.sleep(0.5)
    raise AssertionError("the two workers never both served one burst")


def test_workers_each_take_a_share_of_a_connection_burst(
    standin: StandIn, recorder: Recorder, tmp_path: Path
) -> None:
    # One shared socket lets the first worker to wake accept the whole burst
    # of keep-alive connections; a socket per worker (SO_REUSEPORT) lets the
    # kernel spread them, and a replaced worker takes its socket over.
    with ThreadServer(upstream_app(recorder)) as upstream:
        port = free_port()
        config = tmp_path / "kaitiaki.toml"
        config.write_text(
            WORKERS.format(
                port=port, upstream=upstream.url, issuer=standin.url, root=tmp_path
            )
        )
        config.chmod(0o600)
        with (tmp_path / "gateway.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kaitiaki", "serve", "--config", str(config)],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            assert wait_for_port("127.0.0.1", port, timeout=30)
            served = _until_both_serve(port, tmp_path)
            for _ in range(5):
                seen = len(_instances(tmp_path))
                replies = _burst(port, 24)
                assert all(reply.startswith(b"HTTP/1.1 200") for reply in replies)
                assert set(_instances(tmp_path)[seen:]) == served

            victim = int(sorted(served)[0].rsplit("-", 1)[1])
            os.kill(victim, signal.SIGKILL)
            replacement = _until_both_serve(port, tmp_path) - served
            assert len(replacement) == 1, replacement  # on the same port
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")
def test_worker_sockets_share_one_port_and_say_tcp() -> None:
    import uvicorn

    from kaitiaki.gateway.workers import worker_sockets

    config = uvicorn.Config(lambda: None, host="127.0.0.1", port=0, workers=3)
    sockets = worker_sockets(config)
    try:
        assert len(sockets) == 3
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
        # asyncio sets TCP_NODELAY on accepted connections only when the
        # listening socket names IPPROTO_TCP; without it, Nagle's algorithm
        # waits for delayed ACKs and each reply takes about 40 ms.
        assert all(sock.proto == socket.IPPROTO_TCP for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")
def test_worker_sockets_refuse_a_port_another_group_listens_on() -> None:
    # Another gateway's workers (the same user: an old release still running)
    # already listen on the port with SO_REUSEPORT. Joining their group would
    # succeed silently and split the connections between two configurations.
    import uvicorn

    from kaitiaki.gateway.workers import worker_sockets

    running = worker_sockets(
        uvicorn.Config(lambda: None, host="127.0.0.1", port=0, workers=2)
    )
    try:
        for sock in running:
            sock.listen()
        port = running[0].getsockname()[1]
        config = uvicorn.Config(lambda: None, host="127.0.0.1", port=port, workers=2)
        with pytest.raises(OSError):
            sockets = worker_sockets(config)
            for sock in sockets:
                sock.close()
        # Once they are gone, the port is taken as before.
        for sock in running:
            sock.close()
        sockets = worker_sockets(config)
        assert {sock.getsockname()[1] for sock in sockets} == {port}
        for sock in sockets:
            sock.close()
    finally:
        for sock in running:
            sock.close()
