"""Key rings: the current key of a kind, plus retired keys that still verify.

A ring lives in one owner-only directory: the current private JWK in a file
whose path never changes (so other components can be given that path), and
retired keys under ``retired/`` with the time until which each still
verifies. Rotation writes a new current key and retires the old one for the
configured overlap, so tokens, checkpoints and HMACs made with it keep
verifying until then. Every call takes ``now``; nothing here reads the clock.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, import_key

from kaitiaki.errors import ConfigError
from kaitiaki.iam.files import check_owner_only, read_owner_only, write_owner_only

__all__ = [
    "KEY_KINDS",
    "KeyKind",
    "KeyRing",
    "Rotation",
    "public_jwk",
    "secret_bytes",
]

KeyKind = Literal[
    "issuer",
    "audit-checkpoint",
    "upstream",
    "identifier-hmac",
    "refapi-data",
    "refapi-index",
]
KEY_KINDS: tuple[KeyKind, ...] = (
    "issuer",
    "audit-checkpoint",
    "upstream",
    "identifier-hmac",
    "refapi-data",
    "refapi-index",
)

logger = logging.getLogger("kaitiaki.iam.keyring")

#: The public members of each key type (RFC 7517/7518/8037), plus metadata.
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "RSA": ("kty", "n", "e"),
}
_METADATA = ("kid", "use", "alg", "key_ops")
_RETIRED = "retired"
# Key ids name files under retired/: no separators, no dot segments.
_KID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_INDEX = "ring.json"


def _generate(kind: KeyKind) -> Key:
    if kind == "issuer":
        return ECKey.generate_key("P-256", private=True, auto_kid=True)
    if kind == "audit-checkpoint":
        return OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
    # Symmetric keys get a random kid: a thumbprint would hash the secret.
    return OctKey.generate_key(256, parameters={"kid": secrets.token_urlsafe(12)})


def public_jwk(key: Key) -> dict[str, Any]:
    """The public JWK of an asymmetric key, built from an allow-list of members.

    Symmetric keys have no public form and are refused, so a JWKS built from
    this can never carry ``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi`` or ``k``.
    """
    data = key.as_dict(private=False)
    members = _PUBLIC_MEMBERS.get(str(data.get("kty")))
    if members is None:
        raise ConfigError(f"key {key.kid}: a symmetric key has no public form")
    allowed = (*members, *_METADATA)
    return {name: data[name] for name in allowed if name in data}


def secret_bytes(key: Key) -> bytes:
    """The raw bytes of a symmetric (``oct``) key."""
    if not isinstance(key, OctKey):
        raise ConfigError(f"key {key.kid}: not a symmetric key")
    return key.raw_value


def _load_key(path: Path) -> Key:
    text = read_owner_only(path, "key file")
    try:
        key = import_key(json.loads(text))
    except (ValueError, TypeError, JoseError) as exc:
        raise ConfigError(f"key file {path} does not hold a usable JWK") from exc
    if not isinstance(key, OctKey) and not key.is_private:
        raise ConfigError(
            f"key file {path} holds a public key; a private JWK is needed"
        )
    key.ensure_kid()
    return key


def _dump_key(key: Key) -> str:
    return json.dumps(key.as_dict(private=True), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True, slots=True)
class Rotation:
    """What one rotation did; safe to log and audit (key ids only)."""

    kind: str
    new_kid: str
    retired_kid: str | None
    verify_until: int


class KeyRing:
    """The keys of one kind in ``directory``; the current one in ``current``."""

    def __init__(
        self, kind: KeyKind, directory: Path, *, current_file: str = "current.jwk"
    ) -> None:
        self.kind = kind
        self.directory = directory
        self.current_path = directory / current_file

    @classmethod
    def in_store(cls, kind: KeyKind, key_dir: str | Path) -> KeyRing:
        """The ring of ``kind`` under the key store directory ``key_dir``."""
        return cls(kind, Path(key_dir) / kind)

    def ensure(self) -> Key:
        """The current key, generated (mode 0600) when the ring is new."""
        if self.current_path.exists():
            return self.current()
        key = _generate(self.kind)
        write_owner_only(self.current_path, _dump_key(key))
        logger.info("created %s key %s", self.kind, key.kid)
        return key

    def current(self) -> Key:
        return _load_key(self.current_path)

    def _index_path(self) -> Path:
        return self.directory / _RETIRED / _INDEX

    def _index(self) -> dict[str, int]:
        path = self._index_path()
        if not path.exists():
            return {}
        try:
            data = json.loads(read_owner_only(path, "key ring index"))
        except ValueError as exc:
            raise ConfigError(f"key ring index {path} is not valid JSON") from exc
        if not isinstance(data, dict) or not all(
            isinstance(until, int) and _KID.fullmatch(kid)
            for kid, until in data.items()
        ):
            raise ConfigError(f"key ring index {path}: expected {{kid: time}}")
        return data

    def retired(self, now: int) -> list[Key]:
        """Retired keys that still verify at ``now``, newest first."""
        index = self._index()
        live = sorted((until, kid) for kid, until in index.items() if until > now)
        return [
            _load_key(self.directory / _RETIRED / f"{kid}.jwk")
            for _, kid in reversed(live)
        ]

    def verifying(self, now: int) -> list[Key]:
        """Every key that verifies at ``now``: the current one first."""
        return [self.current(), *self.retired(now)]

    def find(self, kid: str, now: int) -> Key | None:
        return next((key for key in self.verifying(now) if key.kid == kid), None)

    def public_jwks(self, now: int) -> dict[str, Any]:
        """The JWKS of the verifying keys: public members only."""
        return {"keys": [public_jwk(key) for key in self.verifying(now)]}

    def rotate(self, now: int, overlap_seconds: int) -> Rotation:
        """Make a new current key; the old one verifies for ``overlap_seconds``."""
        old = self.current() if self.current_path.exists() else None
        fresh = _generate(self.kind)
        verify_until = now + overlap_seconds
        if old is not None:
            check_owner_only(self.current_path, "key file")
            retired_path = self.directory / _RETIRED / f"{old.kid}.jwk"
            write_owner_only(retired_path, _dump_key(old))
            index = {k: v for k, v in self._index().items() if v > now}
            index[str(old.kid)] = verify_until
            write_owner_only(self._index_path(), json.dumps(index, sort_keys=True))
        write_owner_only(self.current_path, _dump_key(fresh))
        self.prune(now)
        logger.info(
            "rotated %s key: %s replaces %s, which verifies until %d",
            self.kind,
            fresh.kid,
            old.kid if old else "-",
            verify_until,
        )
        return Rotation(
            self.kind, str(fresh.kid), str(old.kid) if old else None, verify_until
        )

    def prune(self, now: int) -> list[str]:
        """Delete retired keys whose overlap has ended; their kids are returned."""
        index = self._index()
        expired = [kid for kid, until in index.items() if until <= now]
        for kid in expired:
            (self.directory / _RETIRED / f"{kid}.jwk").unlink(missing_ok=True)
            del index[kid]
        if expired:
            write_owner_only(self._index_path(), json.dumps(index, sort_keys=True))
        return expired
