"""Which ring holds each kind of key under the settings, and rotating it.

The issuer's ring is its state directory (when a development issuer is
configured); the reference API's rings live under ``[refapi] key_dir``; the
upstream credential's under ``[keys] dir``. The audit stream's two keys are
the files its settings name (``[audit] checkpoint_key_file`` and
``hmac_key_file``): rotating ``audit-checkpoint`` retires the key the gateway
really signs checkpoints with, keeping its public half so that every earlier
checkpoint still verifies, and ``identifier-hmac`` is refused, because a new
key would make every earlier pseudonym impossible to match to its patient.
"""

from __future__ import annotations

from pathlib import Path

from kaitiaki.errors import ConfigError
from kaitiaki.iam.keyring import KEY_KINDS, KeyKind, KeyRing, Rotation
from kaitiaki.settings import Settings

__all__ = [
    "AUDIT_KINDS",
    "KeyNotRotated",
    "ensure_rings",
    "key_listing",
    "ring_for",
    "rotate_key",
]

_REFAPI_KINDS = ("refapi-data", "refapi-index")
#: Kinds held by the audit stream's own key files rather than a ring.
AUDIT_KINDS = ("audit-checkpoint", "identifier-hmac")


class KeyNotRotated(ConfigError):
    """A kind of key that is never rotated (the identifier HMAC key)."""


def _known(kind: str) -> KeyKind:
    if kind not in KEY_KINDS:
        raise ConfigError(f"unknown key kind {kind!r}; choose from {list(KEY_KINDS)}")
    return kind


def ring_for(kind: str, settings: Settings) -> KeyRing:
    """The ring of ``kind``; an unknown kind names the accepted ones, and the
    audit stream's kinds, which are files and not rings, are refused."""
    known = _known(kind)
    if known in AUDIT_KINDS:
        raise ConfigError(
            f"{known} is the audit stream's key file ([audit] settings), not a ring"
        )
    if known == "issuer" and settings.dev_issuer is not None:
        from kaitiaki.issuer.state import signing_key_ring

        return signing_key_ring(settings.dev_issuer)
    if known in _REFAPI_KINDS and settings.refapi is not None:
        return KeyRing.in_store(known, Path(settings.refapi.key_dir))
    return KeyRing.in_store(known, Path(settings.keys.dir))


def key_listing(settings: Settings) -> list[tuple[str, str, Path]]:
    """Every kind's current key, generated when missing: (kind, id, file)."""
    from kaitiaki.audit.keys import load_audit_keys

    audit = load_audit_keys(settings.audit)
    hmac_path, checkpoint_path = settings.audit.key_paths()
    listing: list[tuple[str, str, Path]] = []
    for kind in KEY_KINDS:
        if kind == "audit-checkpoint":
            listing.append((kind, audit.signer.key_id, checkpoint_path))
        elif kind == "identifier-hmac":
            listing.append((kind, "(secret, no id)", hmac_path))
        else:
            ring = ring_for(kind, settings)
            listing.append((kind, str(ring.ensure().kid), ring.current_path))
    return listing


def ensure_rings(settings: Settings) -> list[str]:
    """Generate the missing current keys of every kind; their ids, in order."""
    return [kid for _, kid, _ in key_listing(settings)]


def rotate_key(kind: str, settings: Settings, now: int) -> Rotation:
    """Rotate ``kind`` with the configured overlap; the reference API's data is
    re-encrypted under the new key right away (its old key stays readable).

    A retired checkpoint key has no end of overlap (``verify_until`` 0): its
    public half is kept for as long as the checkpoints it signed."""
    known = _known(kind)
    if known == "identifier-hmac":
        raise KeyNotRotated(
            "identifier-hmac is not rotated: events are searched by patient "
            "through this key's pseudonyms, and a new key would make every "
            "earlier event unmatchable; protect it like the audit trail instead"
        )
    if known == "audit-checkpoint":
        from kaitiaki.audit.keys import load_audit_keys, rotate_checkpoint_key

        old = load_audit_keys(settings.audit).signer.key_id
        new = rotate_checkpoint_key(settings.audit)
        return Rotation(known, new, old, 0)
    rotation = ring_for(known, settings).rotate(now, settings.keys.overlap_seconds)
    if known in _REFAPI_KINDS and settings.refapi is not None:
        from kaitiaki.refapi.protect import reprotect_database

        reprotect_database(settings.refapi, now)
    return rotation
