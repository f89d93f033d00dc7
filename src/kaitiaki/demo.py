"""``make run``: start the development issuer, the reference FHIR API and the
gateway as three processes on loopback, and stop them together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kaitiaki.errors import ConfigError
from kaitiaki.settings import Settings

__all__ = ["DemoProcesses", "wait_for_port"]


def wait_for_port(host: str, port: int, *, timeout: float = 20.0) -> bool:
    """True once something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class DemoProcesses:
    """The three demo processes, each a ``kaitiaki`` subcommand."""

    def __init__(self, settings: Settings, config: str | None) -> None:
        if settings.dev_issuer is None or settings.refapi is None:
            raise ConfigError("the demo needs [dev_issuer] and [refapi] sections")
        self._settings = settings
        self._config = config
        self._children: list[subprocess.Popen[bytes]] = []

    def _spawn(self, command: str) -> None:
        argv = [sys.executable, "-m", "kaitiaki", command]
        if self._config:
            argv += ["--config", self._config]
        self._children.append(subprocess.Popen(argv))  # noqa: S603

    def start(self) -> None:
        issuer, refapi = self._settings.dev_issuer, self._settings.refapi
        if issuer is None or refapi is None:
            raise ConfigError("the demo needs [dev_issuer] and [refapi] sections")
        gateway = self._settings.gateway
        Path("var").mkdir(mode=0o700, exist_ok=True)
        for command, host, port in (
            ("issuer", issuer.host, issuer.port),
            ("refapi", refapi.host, refapi.port),
            ("serve", gateway.host, gateway.port),
        ):
            self._spawn(command)
            if not wait_for_port(host, port):
                self.stop()
                raise ConfigError(
                    f"the {command} process did not start on {host}:{port}"
                )

    def wait(self) -> int:
        """Block until a child exits or a signal arrives; then stop them all."""
        stopping = False

        def _on_signal(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stopping and all(child.poll() is None for child in self._children):
            time.sleep(0.2)
        failed = any(child.poll() not in (None, 0) for child in self._children)
        self.stop()
        return 1 if failed and not stopping else 0

    def stop(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self._children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
