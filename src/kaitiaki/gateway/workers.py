"""Worker processes with one listening socket each, so the kernel balances them.

uvicorn's supervisor hands every worker the same listening socket. Whichever
worker wakes first then accepts a whole burst of connections (asyncio accepts
up to the backlog per wake-up), and with keep-alive clients, such as a load
balancer's connection pool, one worker can end up serving nearly everything
while the others idle. On Linux, :class:`BalancedWorkers` gives each worker a
socket of its own, bound to the same address with ``SO_REUSEPORT``: the
kernel spreads new connections over them by a hash of the connection, as
nginx's ``reuseport`` does. A worker that dies is replaced on its own socket,
whose queued connections wait for the replacement rather than being lost.
Elsewhere the workers share one socket, as uvicorn does.

Only processes of the same user can join a ``SO_REUSEPORT`` group on Linux,
so another user's process cannot take a share of the connections. A process
of the same user can, and would do so silently: a second ``kaitiaki serve``
started on the port (an old release left running, another configuration)
would bind without an error and serve a share of the connections under its
own settings. So the port is first bound without ``SO_REUSEPORT``, which
fails while any socket listens on it, and only then is the group bound.
"""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

__all__ = ["BalancedWorkers", "worker_sockets"]

logger = logging.getLogger("kaitiaki.gateway.workers")


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say
    # so, and without it Nagle's algorithm holds a reply's second write back
    # for the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _check_port_free(host: str, port: int) -> None:
    """Fail with ``EADDRINUSE`` when anything listens on the port, a
    ``SO_REUSEPORT`` group included (which a member would join unnoticed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        # SO_REUSEADDR as uvicorn binds: connections in TIME_WAIT from an
        # earlier run do not count, a listening socket does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def worker_sockets(config: Config) -> list[socket.socket]:
    """One socket per worker on Linux (``SO_REUSEPORT``), else one shared.

    All are bound to one port before any worker starts (a ``port`` of 0 is
    resolved by the first), so a taken port fails the start at once.
    """
    if not sys.platform.startswith("linux") or config.workers < 2:
        return [config.bind_socket()]
    if config.port:
        _check_port_free(config.host, config.port)
    first = _reuse_port_socket(config.host, config.port)
    port = first.getsockname()[1]
    sockets = [first]
    try:
        for _ in range(config.workers - 1):
            sockets.append(_reuse_port_socket(config.host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    logger.info(
        "%d workers on %s:%d, one socket each", config.workers, config.host, port
    )
    return sockets


class BalancedWorkers(Multiprocess):
    """uvicorn's supervisor (health checks, SIGHUP rolling restart, stop on a
    start-up failure), with worker ``n`` always on socket ``n``."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets=sockets)
        self.per_worker = len(sockets) == config.workers

    def _spawn(self, index: int) -> Process:
        sockets = [self.sockets[index]] if self.per_worker else self.sockets
        process = Process(self.config, sockets)
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._spawn(index) for index in range(self.processes_num)]

    def restart_all(self) -> None:
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn(index)
            timeout = self.config.timeout_worker_healthcheck
            if not new.wait_until_ready(timeout, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error(
                        "replacement worker %s was not ready in time; keeping "
                        "worker %s and stopping the restart",
                        new.pid,
                        old.pid,
                    )
                return
            old.terminate()
            old.join()
            self.processes[index] = new

    def keep_subprocess_alive(self) -> None:
        for index, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung, or already gone
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It failed before serving: every replacement would fail alike.
                logger.error("worker %s failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            logger.warning("worker %s died; starting a replacement", process.pid)
            self.processes[index] = self._spawn(index)
