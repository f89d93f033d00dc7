"""Envelope encryption: round trip, binding to its row, rewrap, blind index."""

from __future__ import annotations

import os

import pytest

from kaitiaki.iam.envelope import (
    SealError,
    blind_index,
    open_sealed,
    rewrap,
    seal,
    sealed_kid,
)

OLD, NEW = os.urandom(32), os.urandom(32)
KEYS = {"old": OLD, "new": NEW}
AAD = b"refapi|Patient/pat-1"


def test_seal_round_trip_and_kid() -> None:
    sealed = seal(b"Wharepapa", kid="old", kek=OLD, aad=AAD)

    assert b"Wharepapa" not in sealed.encode()
    assert sealed_kid(sealed) == "old"
    assert open_sealed(sealed, KEYS.get, aad=AAD) == b"Wharepapa"


def test_seal_is_fresh_each_time() -> None:
    first = seal(b"same", kid="old", kek=OLD, aad=AAD)
    assert first != seal(b"same", kid="old", kek=OLD, aad=AAD)


def _tampered(sealed: str) -> str:
    parts = sealed.split(".")
    last = parts[-1]
    parts[-1] = ("A" if last[0] != "A" else "B") + last[1:]
    return ".".join(parts)


@pytest.mark.parametrize(
    ("mutate", "aad"),
    [
        (lambda s: s, b"refapi|Patient/pat-2"),
        (_tampered, AAD),
        (lambda s: s.replace("k1.old.", "k1.new.", 1), AAD),
        (lambda s: s.replace("k1.old.", "k1.gone.", 1), AAD),
        (lambda s: "k2" + s[2:], AAD),
        (lambda s: s + ".x", AAD),
    ],
)
def test_open_sealed_refuses_other_row_damage_or_key(
    mutate: object, aad: bytes
) -> None:
    sealed = seal(b"ZAT2518", kid="old", kek=OLD, aad=AAD)

    with pytest.raises(SealError):
        open_sealed(mutate(sealed), KEYS.get, aad=aad)  # type: ignore[operator]


def test_rewrap_moves_to_new_key_keeping_ciphertext() -> None:
    sealed = seal(b"1987-03-14", kid="old", kek=OLD, aad=AAD)

    moved = rewrap(sealed, KEYS.get, kid="new", kek=NEW, aad=AAD)

    assert sealed_kid(moved) == "new"
    assert moved.split(".")[-1] == sealed.split(".")[-1]
    assert open_sealed(moved, {"new": NEW}.get, aad=AAD) == b"1987-03-14"


def test_blind_index_is_keyed_and_stable() -> None:
    assert blind_index(OLD, "ZAT2518") == blind_index(OLD, "ZAT2518")
    assert blind_index(OLD, "ZAT2518") != blind_index(NEW, "ZAT2518")
    assert "ZAT2518" not in blind_index(OLD, "ZAT2518")
