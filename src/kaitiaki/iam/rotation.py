"""Which ring holds each kind of key under the settings, and rotating it.

The issuer's ring is its state directory (when a development issuer is
configured); every other kind lives under ``[keys] dir``, except the
reference API's rings, which live under ``[refapi] key_dir``.
"""

from __future__ import annotations

from pathlib import Path

from kaitiaki.errors import ConfigError
from kaitiaki.iam.keyring import KEY_KINDS, KeyKind, KeyRing, Rotation
from kaitiaki.settings import Settings

__all__ = ["ensure_rings", "ring_for", "rotate_key"]

_REFAPI_KINDS = ("refapi-data", "refapi-index")


def ring_for(kind: str, settings: Settings) -> KeyRing:
    """The ring of ``kind``; an unknown kind names the accepted ones."""
    if kind not in KEY_KINDS:
        raise ConfigError(f"unknown key kind {kind!r}; choose from {list(KEY_KINDS)}")
    known: KeyKind = kind
    if known == "issuer" and settings.dev_issuer is not None:
        from kaitiaki.issuer.state import signing_key_ring

        return signing_key_ring(settings.dev_issuer)
    if known in _REFAPI_KINDS and settings.refapi is not None:
        return KeyRing.in_store(known, Path(settings.refapi.key_dir))
    return KeyRing.in_store(known, Path(settings.keys.dir))


def ensure_rings(settings: Settings) -> list[str]:
    """Generate the missing current keys of every kind; their kids, in order."""
    return [str(ring_for(kind, settings).ensure().kid) for kind in KEY_KINDS]


def rotate_key(kind: str, settings: Settings, now: int) -> Rotation:
    """Rotate ``kind`` with the configured overlap; the reference API's data is
    re-encrypted under the new key right away (its old key stays readable)."""
    rotation = ring_for(kind, settings).rotate(now, settings.keys.overlap_seconds)
    if kind in _REFAPI_KINDS and settings.refapi is not None:
        from kaitiaki.refapi.protect import reprotect_database

        reprotect_database(settings.refapi, now)
    return rotation
