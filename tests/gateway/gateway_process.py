"""A real ``kaitiaki serve`` process with a settings file, in front of the
recording upstream and trusting the stand-in issuer (both in this process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kaitiaki.demo import wait_for_port
from tests.conftest import free_port
from tests.gateway.conftest import gateway_toml


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    url: str
    root: Path
    config: Path
    log: Path

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


def settings_text(
    issuer: str, upstream: str, root: Path, audit: str, port: int, instance: str
) -> str:
    text = gateway_toml(issuer, upstream, root / "var")
    text = text.replace("port = 0", f"port = {port}")
    text = text.replace('instance = "test-gw"', f'instance = "{instance}"')
    head, _, _ = text.partition("[audit]")
    return head + "[audit]\n" + audit


@contextmanager
def gateway_process(
    issuer: str,
    upstream: str,
    root: Path,
    audit: str,
    *,
    log_level: str = "INFO",
    instance: str = "test-gw",
) -> Iterator[GatewayProcess]:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "kaitiaki.toml"
    config.write_text(settings_text(issuer, upstream, root, audit, port, instance))
    config.chmod(0o600)  # the gateway refuses settings others can read
    log = root / "gateway.log"
    env = {**os.environ, "KAITIAKI_LOG_LEVEL": log_level}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "kaitiaki", "--config", str(config), "serve"],
            cwd=root,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
    running = GatewayProcess(process, f"http://127.0.0.1:{port}", root, config, log)
    try:
        if not wait_for_port("127.0.0.1", port, timeout=20):
            raise RuntimeError("gateway did not start: " + log.read_text()[-2000:])
        yield running
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
