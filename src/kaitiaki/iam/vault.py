"""Reading secrets from HashiCorp Vault through ``hvac``.

``vault:kv/data/app#field`` reads ``field`` of the secret at ``kv/data/app``;
KV version 2 responses (``data.data``) and version 1 (``data``) both work.
The Vault token is itself a secret reference (``env:`` or ``file:``).
"""

from __future__ import annotations

import logging
from typing import Any

import hvac
import hvac.exceptions
import requests

from kaitiaki.errors import ConfigError
from kaitiaki.iam.secrets import Secret

__all__ = ["VaultReader"]

logger = logging.getLogger("kaitiaki.iam.vault")


class VaultReader:
    """Reads one field of a Vault secret; a failure names the path, never a value."""

    def __init__(
        self,
        url: str,
        token: Secret,
        *,
        namespace: str | None = None,
        ca_file: str | None = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._url = url
        self._client = hvac.Client(
            url=url,
            token=token.reveal(),
            namespace=namespace,
            verify=ca_file if ca_file else True,
            timeout=int(max(1, timeout_seconds)),
        )

    def __call__(self, path: str, field: str) -> str:
        try:
            response = self._client.read(path)
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise ConfigError(
                f"vault:{path}: cannot be read from {self._url} ({type(exc).__name__})"
            ) from exc
        value = _field(response, field)
        if value is None:
            raise ConfigError(f"vault:{path}#{field}: no such secret or field")
        return value


def _field(response: Any, field: str) -> str | None:
    if not isinstance(response, dict):
        return None
    data = response.get("data")
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    value = data.get(field) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
