"""The kill switch: clients whose tokens the gateway refuses, whatever they say.

Suspensions are kept in an owner-only JSON file so they survive a restart;
the gateway checks the in-memory set on every authenticated request.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from kaitiaki.errors import ConfigError
from kaitiaki.iam.files import read_owner_only, write_owner_only

__all__ = ["Suspensions"]

logger = logging.getLogger("kaitiaki.iam.suspensions")


class Suspensions:
    """Suspended client ids, with the time each was suspended."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._clients: dict[str, int] = self._read() if path else {}

    def _read(self) -> dict[str, int]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(read_owner_only(self._path, "suspension file"))
        except ValueError as exc:
            raise ConfigError(f"suspension file {self._path} is not JSON") from exc
        if not isinstance(data, dict) or not all(
            isinstance(value, int) for value in data.values()
        ):
            raise ConfigError(f"suspension file {self._path}: expected {{id: time}}")
        return data

    def _save(self) -> None:
        if self._path is not None:
            write_owner_only(self._path, json.dumps(self._clients, sort_keys=True))

    def is_suspended(self, client_id: str) -> bool:
        return client_id in self._clients

    def suspend(self, client_id: str, now: int) -> bool:
        """Suspend ``client_id``; False when it already was."""
        with self._lock:
            if client_id in self._clients:
                return False
            self._clients[client_id] = now
            self._save()
        logger.warning("client %s suspended", client_id)
        return True

    def resume(self, client_id: str) -> bool:
        """Lift a suspension; False when there was none."""
        with self._lock:
            if self._clients.pop(client_id, None) is None:
                return False
            self._save()
        logger.warning("client %s resumed", client_id)
        return True

    def listed(self) -> dict[str, int]:
        return dict(self._clients)
