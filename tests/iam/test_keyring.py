"""Key generation, rotation with overlap for every kind, public-only JWKS."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.jwk import Key

from kaitiaki.errors import ConfigError
from kaitiaki.iam.keyring import KEY_KINDS, KeyKind, KeyRing, public_jwk, secret_bytes
from kaitiaki.issuer.state import ensure_state, load_state, signing_key_ring
from kaitiaki.settings import DevIssuerSettings

NOW = 1_800_000_000
OVERLAP = 3600
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
MESSAGE = b"checkpoint 42"


def _sign(kind: KeyKind, key: Key) -> bytes:
    if kind in ("issuer", "audit-checkpoint"):
        alg = "ES256" if kind == "issuer" else "Ed25519"
        return jws.serialize_compact(
            {"alg": alg}, MESSAGE, key, algorithms=[alg]
        ).encode()
    return hmac.new(secret_bytes(key), MESSAGE, hashlib.sha256).digest()


def _verifies(kind: KeyKind, key: Key | None, proof: bytes) -> bool:
    if key is None:
        return False
    if kind in ("issuer", "audit-checkpoint"):
        alg = "ES256" if kind == "issuer" else "Ed25519"
        return jws.deserialize_compact(proof, key, algorithms=[alg]).payload == MESSAGE
    return hmac.compare_digest(_sign(kind, key), proof)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_keyring_generates_owner_only_key(tmp_path: Path, kind: KeyKind) -> None:
    ring = KeyRing.in_store(kind, tmp_path / "keys")

    key = ring.ensure()

    assert _mode(ring.current_path) == 0o600
    assert _mode(ring.directory) == 0o700
    assert ring.ensure().kid == key.kid


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_keyring_rotation_keeps_old_key_verifying_for_overlap(
    tmp_path: Path, kind: KeyKind
) -> None:
    ring = KeyRing.in_store(kind, tmp_path / "keys")
    old = ring.ensure()
    proof = _sign(kind, old)

    rotation = ring.rotate(NOW, OVERLAP)

    assert rotation.retired_kid == old.kid and rotation.new_kid != old.kid
    assert ring.current().kid == rotation.new_kid
    assert _verifies(kind, ring.find(str(old.kid), NOW + OVERLAP - 1), proof)
    assert ring.find(str(old.kid), NOW + OVERLAP) is None
    assert ring.prune(NOW + OVERLAP) == [old.kid]
    assert [key.kid for key in ring.verifying(NOW)] == [rotation.new_kid]


def test_keyring_two_rotations_keep_both_previous_keys(tmp_path: Path) -> None:
    ring = KeyRing.in_store("identifier-hmac", tmp_path)
    first = ring.ensure()
    second = ring.rotate(NOW, OVERLAP).new_kid
    third = ring.rotate(NOW + 10, OVERLAP).new_kid

    kids = [key.kid for key in ring.verifying(NOW + 20)]

    assert kids == [third, second, first.kid]


def test_keyring_refuses_loose_key_file(tmp_path: Path) -> None:
    ring = KeyRing.in_store("upstream", tmp_path)
    ring.ensure()
    ring.current_path.chmod(0o644)

    with pytest.raises(ConfigError, match="group or others"):
        ring.current()
    with pytest.raises(ConfigError, match="group or others"):
        ring.rotate(NOW, OVERLAP)


@pytest.mark.parametrize(
    "kind", ["upstream", "identifier-hmac", "refapi-data", "refapi-index"]
)
def test_public_jwk_refuses_symmetric_keys(tmp_path: Path, kind: KeyKind) -> None:
    key = KeyRing.in_store(kind, tmp_path).ensure()

    with pytest.raises(ConfigError, match="no public form"):
        public_jwk(key)


def _issuer(tmp_path: Path) -> DevIssuerSettings:
    return DevIssuerSettings(state_dir=str(tmp_path / "issuer"), audience="aud")


def _assert_public_only(jwks: dict[str, object]) -> None:
    text = json.dumps(jwks)
    for entry in jwks["keys"]:  # type: ignore[attr-defined]
        assert not set(entry) & set(PRIVATE_MEMBERS), entry
    for member in PRIVATE_MEMBERS:
        assert f'"{member}"' not in text


def test_issuer_jwks_never_has_private_members_even_after_rotation(
    tmp_path: Path,
) -> None:
    settings = _issuer(tmp_path)
    ensure_state(settings)
    ring = signing_key_ring(settings)
    _assert_public_only(load_state(settings, now=NOW).public_jwks)

    for step in range(3):
        ring.rotate(NOW + step, OVERLAP)
        jwks = load_state(settings, now=NOW + step).public_jwks
        _assert_public_only(jwks)
        assert len(jwks["keys"]) == step + 2


def test_issuer_rotation_old_tokens_verify_during_overlap(tmp_path: Path) -> None:
    settings = _issuer(tmp_path)
    ensure_state(settings)
    old = load_state(settings, now=NOW).signing_key
    token = jws.serialize_compact({"alg": "ES256", "kid": old.kid}, b"{}", old)

    signing_key_ring(settings).rotate(NOW, OVERLAP)

    during = load_state(settings, now=NOW + OVERLAP - 1)
    after = load_state(settings, now=NOW + OVERLAP)
    assert during.signing_key.kid != old.kid
    assert old.kid in [key["kid"] for key in during.public_jwks["keys"]]
    assert old.kid not in [key["kid"] for key in after.public_jwks["keys"]]
    retired = next(key for key in during.retired_keys if key.kid == old.kid)
    assert jws.deserialize_compact(token, retired, algorithms=["ES256"])


def test_keys_commands_list_and_rotate_every_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kaitiaki keys list` shows every kind, with the audit's own key files;
    `keys rotate` prints when the old key stops verifying (ISO 8601), and
    refuses the identifier key."""
    import re

    from kaitiaki.cli import main

    config = tmp_path / "kaitiaki.toml"
    config.write_text(
        f"""
[gateway]
upstream = "http://127.0.0.1:9/fhir"
[auth]
issuer = "http://127.0.0.1:9"
audience = "a"
[audit]
sink = "jsonl"
path = "{tmp_path / "audit" / "audit.jsonl"}"
[keys]
dir = "{tmp_path / "keys"}"
"""
    )
    config.chmod(0o600)
    assert main(["keys", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert str(tmp_path / "audit" / "keys" / "audit-checkpoint.jwk") in listed
    assert "identifier-hmac" in listed and "upstream" in listed
    assert main(["keys", "rotate", "upstream", "--config", str(config)]) == 0
    rotated = capsys.readouterr().out
    assert re.search(r"verifies until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rotated)
    assert main(["keys", "rotate", "audit-checkpoint", "--config", str(config)]) == 0
    assert "keeps verifying the checkpoints it signed" in capsys.readouterr().out
    assert main(["keys", "rotate", "identifier-hmac", "--config", str(config)]) != 0
