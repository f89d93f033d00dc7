"""At-rest protection of patient-identifying fields in the reference API.

Names, identifiers, birth date, telecom, address, contacts and photos leave
the stored JSON and are sealed together (envelope encryption, key ring
``refapi-data``), bound to the row's type and id. Identifier values in the
search index are a keyed blind index (key ring ``refapi-index``), so
search by identifier works without the value being stored in clear.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from joserfc.jwk import Key

from kaitiaki.iam import Secret
from kaitiaki.iam.envelope import blind_index, open_sealed, seal
from kaitiaki.iam.keyring import KeyRing, secret_bytes
from kaitiaki.settings import RefApiSettings

__all__ = ["PROTECTED_FIELDS", "FieldProtector", "reprotect_database"]

logger = logging.getLogger("kaitiaki.refapi.protect")

PROTECTED_FIELDS = (
    "name",
    "identifier",
    "birthDate",
    "telecom",
    "address",
    "contact",
    "photo",
)


def _by_kid(keys: list[Key]) -> dict[str, bytes]:
    return {str(key.kid): secret_bytes(key) for key in keys}


class _RingView:
    """The keys of a ring, re-read only when its current key file changes."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        ring.ensure()
        self._stamp = -1
        self.current_kid = ""
        self.keys: dict[str, bytes] = {}

    def refresh(self, now: int) -> None:
        stamp = self._ring.current_path.stat().st_mtime_ns
        if stamp == self._stamp:
            return
        verifying = self._ring.verifying(now)
        self.current_kid = str(verifying[0].kid)
        self.keys = _by_kid(verifying)
        self._stamp = stamp

    @property
    def current(self) -> bytes:
        return self.keys[self.current_kid]


class FieldProtector:
    """Seals and opens the protected fields; computes blind-index values."""

    def __init__(self, data: KeyRing, index: KeyRing) -> None:
        self._data = _RingView(data)
        self._index = _RingView(index)
        self.refresh()

    @classmethod
    def for_settings(cls, settings: RefApiSettings) -> FieldProtector:
        key_dir = Path(settings.key_dir)
        return cls(
            KeyRing.in_store("refapi-data", key_dir),
            KeyRing.in_store("refapi-index", key_dir),
        )

    def refresh(self, now: int | None = None) -> None:
        """Pick up a rotation made by another process."""
        moment = int(time.time()) if now is None else now
        self._data.refresh(moment)
        self._index.refresh(moment)

    @property
    def data_kid(self) -> str:
        return self._data.current_kid

    @property
    def index_kid(self) -> str:
        return self._index.current_kid

    def split(
        self, resource_type: str, resource: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The resource without its protected fields, and those fields sealed."""
        protected = {k: v for k, v in resource.items() if k in PROTECTED_FIELDS}
        clear = {k: v for k, v in resource.items() if k not in PROTECTED_FIELDS}
        if not protected:
            return clear, None
        plaintext = json.dumps(protected, ensure_ascii=False, separators=(",", ":"))
        sealed = seal(
            plaintext.encode(),
            kid=self._data.current_kid,
            kek=self._data.current,
            aad=_aad(resource_type, str(resource["id"])),
        )
        return clear, sealed

    def join(
        self, resource_type: str, clear: dict[str, Any], sealed: str | None
    ) -> dict[str, Any]:
        """The whole resource again, its protected fields opened."""
        if sealed is None:
            return clear
        aad = _aad(resource_type, str(clear["id"]))
        fields = json.loads(open_sealed(sealed, self._data.keys.get, aad=aad))
        return {**clear, **fields}

    def index_value(self, value: str) -> str:
        """The blind-index value written for ``value``, under the current key."""
        return blind_index(self._index.current, value)

    def index_candidates(self, value: str) -> list[str]:
        """The values ``value`` may be indexed as, one per verifying key."""
        return [blind_index(key, value) for key in self._index.keys.values()]


def _aad(resource_type: str, resource_id: str) -> bytes:
    return f"refapi|{resource_type}/{resource_id}".encode()


def reprotect_database(
    settings: RefApiSettings, now: int, *, password: Secret | None = None
) -> int:
    """Re-seal and re-index every row not under the current keys; the count."""
    from kaitiaki.refapi.app import open_engine
    from kaitiaki.refapi.store import ResourceStore

    engine = open_engine(settings.database_url, password)
    try:
        protector = FieldProtector.for_settings(settings)
        protector.refresh(now)
        store = ResourceStore(engine, protector)
        store.create_tables()
        count = store.reprotect()
    finally:
        engine.dispose()
    logger.info("re-protected %d rows under the current keys", count)
    return count
