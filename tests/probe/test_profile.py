"""Probe profiles: secrets by reference only, the demo profile, and TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaitiaki.errors import ConfigError
from kaitiaki.probe import demo_profile, load_profile
from kaitiaki.probe.profile import parse_profile, resolve_secret
from kaitiaki.settings import load_settings

BASE = {"auth": {"issuer": "https://auth.example"}}


def _profile(reader: dict[str, str]) -> object:
    return parse_profile({**BASE, "clients": {"reader": reader}}, source="test")


@pytest.mark.parametrize("secret", ["s3cr3t-inline", "Bearer abc", "vault:x"])
def test_probe_profile_refuses_inline_secrets(secret: str) -> None:
    with pytest.raises(ConfigError, match="inline secrets are refused"):
        _profile(
            {"client_id": "a", "auth_method": "client_secret_post", "secret": secret}
        )


def test_probe_profile_needs_a_reader_and_a_key_or_secret() -> None:
    with pytest.raises(ConfigError, match="reader"):
        parse_profile({**BASE, "clients": {}}, source="test")
    with pytest.raises(ConfigError, match="key_file"):
        _profile({"client_id": "a"})


def test_probe_secret_references_resolve(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    assert resolve_secret(f"file:{path}") == "from-file"
    assert (
        resolve_secret("env:PROBE_SECRET", {"PROBE_SECRET": "from-env"}) == "from-env"
    )
    with pytest.raises(ConfigError, match="unset"):
        resolve_secret("env:PROBE_SECRET", {})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_secret(f"file:{tmp_path / 'missing'}")


def test_probe_demo_profile_names_the_demo_clients() -> None:
    profile = demo_profile(load_settings(None))
    assert profile.clients["reader"].client_id == "demo-system"
    assert profile.clients["writer"].client_id == "demo-writer"
    assert profile.clients["narrow"].client_id == "demo-narrow"
    assert profile.auth.issuer == "http://127.0.0.1:8090"
    assert profile.logging.audit_sqlite == "var/audit.sqlite"
    assert {"writes", "destructive", "disruptive", "logs"} <= profile.capabilities()


def test_probe_profile_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(
        'name = "staging"\n'
        '[auth]\nissuer = "https://auth.example"\n'
        '[clients.reader]\nclient_id = "r"\nauth_method = "client_secret_post"\n'
        'secret = "env:READER_SECRET"\n'
        "[safety]\nmax_requests = 100\n"
    )
    profile = load_profile(path)
    assert profile.name == "staging"
    assert profile.capabilities() == frozenset()
    with pytest.raises(ConfigError, match="not valid TOML"):
        path.write_text("[auth")
        load_profile(path)
