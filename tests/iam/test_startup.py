"""Start-up refusals: weak credentials (CFG-01) and an exposed admin listener."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaitiaki.cli import main
from kaitiaki.errors import ConfigError
from kaitiaki.iam import SecretStore
from kaitiaki.iam.startup import refuse_unsafe_start, weak_credential
from kaitiaki.settings import parse_settings

BASE = """
[gateway]
upstream = "http://127.0.0.1:9/fhir"
[auth]
issuer = "https://issuer.example"
audience = "https://gw.example/fhir"
"""
WITH_SECRET = (
    BASE
    + """
[secrets.vault]
url = "http://127.0.0.1:8200"
token = "env:VAULT_TOKEN"
"""
)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "changeme",
        "ChangeMe",
        "admin",
        "password",
        "edd1c9f034335f136f87ad84b625c8f1",
        "hvs.example-vault-token",
        "<your-token-here>",
        "replace-me-please",
        "short",
    ],
)
def test_startup_refuses_default_or_example_credential(value: str) -> None:
    settings = parse_settings(WITH_SECRET, source="t")

    with pytest.raises(ConfigError, match="refusing to start") as caught:
        refuse_unsafe_start(settings, SecretStore({"VAULT_TOKEN": value}))
    assert "secrets.vault.token" in str(caught.value)


def test_startup_refuses_missing_credential() -> None:
    settings = parse_settings(WITH_SECRET, source="t")

    with pytest.raises(ConfigError, match="VAULT_TOKEN is not set"):
        refuse_unsafe_start(settings, SecretStore({}))


def test_startup_accepts_strong_credential() -> None:
    settings = parse_settings(WITH_SECRET, source="t")

    refuse_unsafe_start(settings, SecretStore({"VAULT_TOKEN": "hvs.Zq8v1cS4dXk2pL0m"}))


@pytest.mark.parametrize("value", ["hvs.Zq8v1cS4dXk2pL0m", "x7Yb!q2@LmN#p9Rs"])
def test_weak_credential_accepts_random_values(value: str) -> None:
    assert weak_credential(value) is None


@pytest.mark.parametrize(
    ("admin", "refused"),
    [
        ('enabled = true\nhost = "0.0.0.0"', True),
        ('enabled = true\nhost = "10.0.0.5"', True),
        ('enabled = true\nhost = "::"', True),
        ('enabled = false\nhost = "0.0.0.0"', False),
        ('enabled = true\nhost = "127.0.0.1"', False),
        ('enabled = true\nhost = "::1"', False),
    ],
)
def test_startup_refuses_public_admin_without_mtls(admin: str, refused: bool) -> None:
    settings = parse_settings(BASE + f"[admin]\n{admin}\n", source="t")

    if refused:
        with pytest.raises(ConfigError, match="needs mTLS"):
            refuse_unsafe_start(settings, SecretStore({}))
    else:
        refuse_unsafe_start(settings, SecretStore({}))


def test_startup_public_admin_with_mtls_accepted(tmp_path: Path) -> None:
    key = tmp_path / "admin.key"
    key.write_text("key")
    key.chmod(0o600)
    admin = (
        f'enabled = true\nhost = "0.0.0.0"\ntls_cert = "{tmp_path}/admin.crt"\n'
        f'tls_key = "{key}"\nclient_ca = "{tmp_path}/ca.crt"\n'
    )
    settings = parse_settings(BASE + f"[admin]\n{admin}", source="t")

    refuse_unsafe_start(settings, SecretStore({}))
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"admin\.tls_key"):
        refuse_unsafe_start(settings, SecretStore({}))


def test_serve_refuses_default_credential_with_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kaitiaki.toml"
    path.write_text(WITH_SECRET)
    path.chmod(0o600)
    monkeypatch.setenv("VAULT_TOKEN", "changeme")

    status = main(["serve", "--config", str(path)])

    assert status == 2
    error = capsys.readouterr().err
    assert "refusing to start" in error and "changeme" not in error


def test_serve_refuses_loose_settings_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kaitiaki.toml"
    path.write_text(BASE)
    path.chmod(0o644)

    assert main(["serve", "--config", str(path)]) == 2
    assert "chmod 600" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["file", "retired", "directory"])
def test_startup_refuses_loose_key_store(tmp_path: Path, target: str) -> None:
    from kaitiaki.iam.keyring import KeyRing

    keys = tmp_path / "keys"
    settings = parse_settings(BASE + f'[keys]\ndir = "{keys}"\n', source="t")
    ring = KeyRing.in_store("upstream", keys)
    ring.ensure()
    ring.rotate(1_800_000_000, 3600)
    refuse_unsafe_start(settings, SecretStore({}))
    loose = {
        "file": ring.current_path,
        "retired": next((ring.directory / "retired").glob("*.jwk")),
        "directory": ring.directory,
    }[target]
    loose.chmod(0o755 if target == "directory" else 0o644)

    with pytest.raises(ConfigError, match="group or others"):
        refuse_unsafe_start(settings, SecretStore({}))
