"""The issuer's state directory: its signing key and the client registry.

``ensure_state`` creates what is missing and reuses what exists;
``load_state`` reads it back into an immutable :class:`IssuerState`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import Key

from kaitiaki.errors import ConfigError
from kaitiaki.iam.keyring import KeyRing, public_jwk
from kaitiaki.issuer.keys import (
    algorithm_for,
    generate_signing_key,
    load_private_key,
    load_public_key,
    make_private_dir,
    write_json,
    write_private_key,
)
from kaitiaki.settings import DemoClient, DevIssuerSettings

__all__ = [
    "IssuerState",
    "RegisteredClient",
    "ensure_state",
    "load_state",
    "registry_path",
    "signing_key_path",
    "signing_key_ring",
]

logger = logging.getLogger("kaitiaki.issuer.state")

SIGNING_KEY_FILE = "signing-key.jwk"
REGISTRY_FILE = "clients.json"


@dataclass(frozen=True)
class RegisteredClient:
    """A client known to the issuer: its scopes and its public key."""

    client_id: str
    scopes: tuple[str, ...]
    public_key: Key

    @property
    def algorithm(self) -> str:
        return algorithm_for(self.public_key)


@dataclass(frozen=True)
class IssuerState:
    """The issuer's signing key, its registered clients by client id, and the
    retired signing keys whose tokens still verify (the rotation overlap)."""

    signing_key: Key
    clients: dict[str, RegisteredClient]
    retired_keys: tuple[Key, ...] = ()

    @property
    def public_jwks(self) -> dict[str, Any]:
        keys = (self.signing_key, *self.retired_keys)
        return {"keys": [public_jwk(key) for key in keys]}


def signing_key_path(settings: DevIssuerSettings) -> Path:
    return Path(settings.state_dir) / SIGNING_KEY_FILE


def signing_key_ring(settings: DevIssuerSettings) -> KeyRing:
    """The issuer's key ring: ``signing-key.jwk`` and ``retired/``."""
    return KeyRing("issuer", Path(settings.state_dir), current_file=SIGNING_KEY_FILE)


def registry_path(settings: DevIssuerSettings) -> Path:
    return Path(settings.state_dir) / REGISTRY_FILE


def _ensure_private_key(path: Path, what: str) -> Key:
    if path.exists():
        return load_private_key(path)
    key = generate_signing_key()
    write_private_key(path, key)
    logger.info("created %s key %s at %s", what, key.kid, path)
    return key


def _registry_entry(client: DemoClient) -> dict[str, Any]:
    key = _ensure_private_key(Path(client.key_path), f"client {client.client_id}")
    return {
        "client_id": client.client_id,
        "scope": client.scope,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
    }


def ensure_state(settings: DevIssuerSettings) -> None:
    """Create the signing key, demo client keys and registry where missing.

    Existing keys are reused; a key file readable by group or others raises
    :class:`~kaitiaki.errors.ConfigError`. The registry ``clients.json`` holds
    public members only and is rewritten only when it changes.
    """
    make_private_dir(Path(settings.state_dir))
    _ensure_private_key(signing_key_path(settings), "issuer signing")

    registry = {"clients": [_registry_entry(client) for client in settings.clients]}
    path = registry_path(settings)
    if path.exists() and _read_registry(path) == registry:
        return
    write_json(path, registry)
    logger.info("wrote client registry %s", path)


def _read_registry(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the client registry: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("clients"), list):
        raise ConfigError(f"{path}: expected an object with a 'clients' list")
    return data


def _parse_client(entry: object, source: str) -> RegisteredClient:
    if not isinstance(entry, dict):
        raise ConfigError(f"{source}: each client must be an object")
    client_id, scope, jwks = (
        entry.get("client_id"),
        entry.get("scope"),
        entry.get("jwks"),
    )
    if not isinstance(client_id, str) or not isinstance(scope, str):
        raise ConfigError(f"{source}: client_id and scope must be strings")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or len(keys) != 1:
        raise ConfigError(f"{source}: client {client_id} needs exactly one key")
    key = load_public_key(keys[0], source=f"{source} ({client_id})")
    return RegisteredClient(client_id, tuple(scope.split()), key)


def load_state(settings: DevIssuerSettings, *, now: int | None = None) -> IssuerState:
    """Read the signing keys and registry written by :func:`ensure_state`."""
    signing_key = load_private_key(signing_key_path(settings))
    moment = int(time.time()) if now is None else now
    retired = tuple(signing_key_ring(settings).retired(moment))
    if algorithm_for(signing_key) != "ES256":
        raise ConfigError(f"{signing_key_path(settings)}: must be an EC P-256 key")

    path = registry_path(settings)
    data = _read_registry(path)
    clients: dict[str, RegisteredClient] = {}
    for entry in data["clients"]:
        client = _parse_client(entry, str(path))
        clients[client.client_id] = client
    return IssuerState(signing_key, clients, retired)
