"""Key files of the development issuer: private JWKs on disk, owner-only.

Every private key lives in its own JSON file of mode 0600 inside a directory
of mode 0700; a key file that group or others may read is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

from kaitiaki.errors import ConfigError
from kaitiaki.iam import files

__all__ = [
    "algorithm_for",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "make_private_dir",
    "read_owner_only",
    "write_json",
    "write_private_key",
    "write_private_text",
]

_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "Ed25519": "EdDSA"}


def algorithm_for(key: Key) -> str:
    """The one signature algorithm a key is registered for.

    The algorithm always comes from the key, never from a JWS header, so a
    token cannot talk a verifier into another algorithm.
    """
    if isinstance(key, RSAKey):
        return "PS256"
    if isinstance(key, ECKey | OKPKey):
        algorithm = _CURVE_ALGORITHMS.get(key.curve_name)
        if algorithm is not None:
            return algorithm
    raise ConfigError("unsupported key: use an EC P-256 or P-384, Ed25519 or RSA key")


def generate_signing_key() -> ECKey:
    """A fresh P-256 private key whose ``kid`` is its RFC 7638 thumbprint."""
    return ECKey.generate_key("P-256", private=True, auto_kid=True)


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) owner-only if it does not exist."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot create directory: {exc}") from exc


def write_private_key(path: Path, key: Key, *, exist_ok: bool = False) -> None:
    """Write a private JWK to a new file of mode 0600; never overwrite one."""
    write_private_text(
        path,
        json.dumps(key.as_dict(private=True), indent=2, sort_keys=True),
        exist_ok=exist_ok,
    )


def write_private_text(path: Path, text: str, *, exist_ok: bool = False) -> None:
    """Write secret text to a new file of mode 0600 in an owner-only folder;
    never overwrite one.

    The file appears whole or not at all (written aside, then linked into
    place), so processes starting together never read half a key. With
    ``exist_ok`` a file another process created first is kept.
    """
    make_private_dir(path.parent)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(scratch, path)
    except FileExistsError as exc:
        if exist_ok and path.exists():
            return
        raise ConfigError(f"{path}: cannot create key file: it exists") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create key file: {exc}") from exc
    finally:
        scratch.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``data`` as JSON (public data only)."""
    make_private_dir(path.parent)
    scratch = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    try:
        scratch.write_text(text, encoding="utf-8")
        scratch.chmod(0o644)
        scratch.replace(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc}") from exc


def read_owner_only(path: Path) -> str:
    """The text of a key file that only its owner, the running user, may read."""
    return files.read_owner_only(path, "key file")


def load_private_key(path: Path) -> Key:
    """Load an owner-only private JWK file, with a ``kid`` and a known alg."""
    text = read_owner_only(path)
    try:
        data = json.loads(text)
        key = import_key(data)
    except (ValueError, TypeError, JoseError) as exc:
        raise ConfigError(f"{path}: not a usable JWK") from exc
    if not key.is_private:
        raise ConfigError(f"{path}: holds a public key; a private JWK is needed")
    algorithm_for(key)
    key.ensure_kid()
    return key


def load_public_key(data: object, *, source: str) -> Key:
    """Import a registered public JWK; private members are refused."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a JWK object is needed")
    try:
        key = import_key(data)
    except (ValueError, TypeError, JoseError) as exc:
        raise ConfigError(f"{source}: not a usable JWK") from exc
    if key.is_private:
        raise ConfigError(f"{source}: holds private key members")
    algorithm_for(key)
    key.ensure_kid()
    return key
