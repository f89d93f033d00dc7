"""Key files and registry of the development issuer."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kaitiaki.errors import ConfigError
from kaitiaki.issuer import ensure_state
from kaitiaki.issuer.keys import load_private_key
from kaitiaki.issuer.state import load_state, signing_key_path
from kaitiaki.settings import DevIssuerSettings

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_state_first_run_creates_owner_only_keys(
    settings: DevIssuerSettings,
) -> None:
    ensure_state(settings)

    state_dir = Path(settings.state_dir)
    assert _mode(state_dir) == 0o700
    assert _mode(signing_key_path(settings)) == 0o600
    for demo in settings.clients:
        key_path = Path(demo.key_path)
        assert _mode(key_path) == 0o600
        assert _mode(key_path.parent) == 0o700
        assert json.loads(key_path.read_text())["crv"] == "P-256"


def test_ensure_state_signing_key_kid_is_thumbprint(
    settings: DevIssuerSettings,
) -> None:
    ensure_state(settings)

    key = load_private_key(signing_key_path(settings))
    assert key["kid"] == key.thumbprint()
    assert key["crv"] == "P-256"


def test_ensure_state_registry_has_public_members_only(
    settings: DevIssuerSettings,
) -> None:
    ensure_state(settings)

    registry = json.loads((Path(settings.state_dir) / "clients.json").read_text())
    entries = {entry["client_id"]: entry for entry in registry["clients"]}
    assert set(entries) == {"demo-system", "demo-writer"}
    assert entries["demo-system"]["scope"] == "system/*.rs"
    for entry in entries.values():
        (jwk,) = entry["jwks"]["keys"]
        assert not PRIVATE_MEMBERS & set(jwk)


def test_ensure_state_second_run_reuses_keys(settings: DevIssuerSettings) -> None:
    ensure_state(settings)
    first = load_state(settings)

    ensure_state(settings)
    second = load_state(settings)

    assert first.signing_key.kid == second.signing_key.kid
    for client_id, registered in first.clients.items():
        assert second.clients[client_id].public_key == registered.public_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_ensure_state_group_readable_key_refused(
    settings: DevIssuerSettings, mode: int
) -> None:
    ensure_state(settings)
    key_path = Path(settings.clients[0].key_path)
    key_path.chmod(mode)

    with pytest.raises(ConfigError, match=str(key_path)):
        ensure_state(settings)


def test_ensure_state_garbled_key_refused(settings: DevIssuerSettings) -> None:
    ensure_state(settings)
    path = signing_key_path(settings)
    path.write_text("{not json")

    with pytest.raises(ConfigError, match=str(path)):
        ensure_state(settings)
