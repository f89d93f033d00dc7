"""The audit stream's two keys: the HMAC key for patient identifiers and the
Ed25519 key that signs checkpoints.

Both are files, created owner-only (0600 in a 0700 folder) on first run with
the issuer's key-file code; :func:`load_audit_keys` is the one place that
reads them, so a secret store can take its place.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from joserfc.jwk import OKPKey

from kaitiaki.audit.chain import CheckpointSigner
from kaitiaki.audit.redact import Pseudonymiser
from kaitiaki.errors import ConfigError
from kaitiaki.issuer.keys import (
    load_private_key,
    load_public_key,
    read_owner_only,
    write_json,
    write_private_key,
    write_private_text,
)
from kaitiaki.settings import AuditSettings

__all__ = [
    "AuditKeys",
    "load_audit_keys",
    "load_pseudonymiser",
    "load_verification_keys",
    "rotate_checkpoint_key",
]


@dataclass(frozen=True, slots=True)
class AuditKeys:
    pseudonymiser: Pseudonymiser
    signer: CheckpointSigner
    created: tuple[str, ...] = ()


def _hmac_key(path: Path) -> tuple[bytes, bool]:
    created = not path.exists()
    if created:
        write_private_text(path, secrets.token_hex(32), exist_ok=True)
    try:
        key = bytes.fromhex(read_owner_only(path).strip())
    except ValueError as exc:
        raise ConfigError(f"{path}: the audit HMAC key must be hex text") from exc
    if len(key) < 32:
        raise ConfigError(f"{path}: the audit HMAC key must have at least 32 bytes")
    return key, created


def _checkpoint_key(path: Path) -> tuple[CheckpointSigner, bool]:
    created = not path.exists()
    if created:
        key = OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
        write_private_key(path, key, exist_ok=True)
    loaded = load_private_key(path)
    if created:
        # The public half of the key that won, should another process have
        # created the file first.
        write_json(_public_path(path), loaded.as_dict(private=False))
    private = loaded.private_key
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the checkpoint key must be an Ed25519 JWK")
    return CheckpointSigner(private, str(loaded.kid)), created


def _public_path(path: Path) -> Path:
    return path.with_name(path.stem + ".pub.jwk")


def load_audit_keys(settings: AuditSettings) -> AuditKeys:
    """Load (or on first run create) the HMAC and checkpoint keys."""
    hmac_path, checkpoint_path = settings.key_paths()
    key, hmac_created = _hmac_key(hmac_path)
    signer, signer_created = _checkpoint_key(checkpoint_path)
    created = (("hmac",) if hmac_created else ()) + (
        ("checkpoint",) if signer_created else ()
    )
    return AuditKeys(Pseudonymiser(key), signer, created)


def rotate_checkpoint_key(settings: AuditSettings) -> str:
    """Retire the checkpoint key (its public half stays, as
    ``<name>.<kid>.pub.jwk``, for verifying old checkpoints) and create a new
    one; the gateway signs with it from its next start. The id of the new key."""
    _, path = settings.key_paths()
    if path.exists():
        old = load_private_key(path)
        retired = path.with_name(f"{path.stem}.{old.kid}.pub.jwk")
        write_json(retired, old.as_dict(private=False))
        path.unlink()
        _public_path(path).unlink(missing_ok=True)
    signer, _ = _checkpoint_key(path)
    return signer.key_id


def _public_jwk(path: Path) -> tuple[str, Ed25519PublicKey]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read a public JWK: {exc}") from exc
    public = load_public_key(data, source=str(path))
    raw = public.public_key
    if not isinstance(raw, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key")
    return str(public.kid), raw


def load_pseudonymiser(settings: AuditSettings) -> Pseudonymiser:
    """The HMAC key as it is, for searching by patient; never created here."""
    path, _ = settings.key_paths()
    if not path.exists():
        raise ConfigError(f"{path}: no audit HMAC key (it is made by the gateway)")
    key, _ = _hmac_key(path)
    return Pseudonymiser(key)


def load_verification_keys(
    settings: AuditSettings, extra: list[Path]
) -> dict[str, Ed25519PublicKey]:
    """Public checkpoint keys by key id: this gateway's own and its retired
    ones, plus ``extra`` public JWK files (other instances' keys)."""
    keys: dict[str, Ed25519PublicKey] = {}
    _, own = settings.key_paths()
    if own.exists():
        signer, _ = _checkpoint_key(own)
        keys[signer.key_id] = signer.public_key()
    retired = sorted(own.parent.glob(f"{own.stem}.*.pub.jwk"))
    for path in [*retired, *extra]:
        key_id, public = _public_jwk(path)
        keys[key_id] = public
    return keys
