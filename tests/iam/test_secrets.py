"""Secret references, the Secret type, inline-secret refusal, file modes."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest

from kaitiaki.errors import ConfigError
from kaitiaki.iam import Secret, SecretRef, SecretStore, file_problem, parse_reference
from kaitiaki.settings import load_settings, parse_settings

VALUE = "s3cr3t-Value-42"

BASE = """
[gateway]
upstream = "http://127.0.0.1:9/fhir"
[auth]
issuer = "https://issuer.example"
audience = "https://gw.example/fhir"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:KAITIAKI_TOKEN", SecretRef("env", "KAITIAKI_TOKEN")),
        ("file:/run/secrets/db", SecretRef("file", "/run/secrets/db")),
        (
            "vault:kv/data/kaitiaki#token",
            SecretRef("vault", "kv/data/kaitiaki", "token"),
        ),
    ],
)
def test_parse_reference_accepted_forms(text: str, expected: SecretRef) -> None:
    assert parse_reference(text) == expected
    assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    "text",
    [VALUE, "env:", "env:1BAD", "file:relative/path", "vault:kv", "vault:kv/x", ""],
)
def test_parse_reference_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="accepted forms") as caught:
        parse_reference(text)
    assert VALUE not in str(caught.value)


def test_secret_never_shows_its_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE, source="env:X")
    logging.getLogger("kaitiaki.test").warning(
        "secret %s %r %s", secret, secret, [secret]
    )

    shown = f"{secret} {secret!r} {secret:>20} {[secret]} {dict(s=secret)}"
    assert VALUE not in shown
    assert VALUE not in caplog.text
    assert secret.reveal() == VALUE
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_settings_inline_secret_refused_naming_the_key() -> None:
    text = BASE + f'[secrets.vault]\nurl = "http://127.0.0.1:8200"\ntoken = "{VALUE}"\n'

    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="gw.toml")

    message = str(caught.value)
    assert "secrets.vault.token" in message
    assert "env:NAME" in message and "file:/" in message and "vault:" in message
    assert VALUE not in message


def test_settings_reference_accepted() -> None:
    text = BASE + '[refapi]\ndatabase_password = "env:PGPASSWORD"\n'

    settings = parse_settings(text, source="gw.toml")

    assert settings.refapi is not None
    assert str(settings.refapi.database_password) == "env:PGPASSWORD"


def test_store_resolves_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(VALUE + "\n")
    path.chmod(0o600)
    store = SecretStore({"TOKEN": VALUE})

    assert store.resolve("env:TOKEN", setting="x").reveal() == VALUE
    assert store.resolve(f"file:{path}", setting="x").reveal() == VALUE


@pytest.mark.parametrize(
    ("reference", "environ", "reason"),
    [
        ("env:MISSING", {}, "not set"),
        ("env:EMPTY", {"EMPTY": "  "}, "empty"),
        ("vault:kv/data/x#y", {}, "secrets.vault"),
    ],
)
def test_store_refuses_missing_or_empty(
    reference: str, environ: dict[str, str], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        SecretStore(environ).resolve(reference, setting="upstream.key")


def test_store_refuses_group_readable_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(VALUE)
    path.chmod(0o640)

    with pytest.raises(ConfigError, match="chmod 600") as caught:
        SecretStore({}).resolve(f"file:{path}", setting="upstream.key")
    assert VALUE not in str(caught.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_load_settings_refuses_loose_settings_file(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kaitiaki.toml"
    path.write_text(BASE)
    path.chmod(mode)

    with pytest.raises(ConfigError, match="group or others"):
        load_settings(path)


def test_load_settings_accepts_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "kaitiaki.toml"
    path.write_text(BASE)
    path.chmod(0o600)

    assert load_settings(path).auth.audience == "https://gw.example/fhir"


def test_file_problem_names_another_owner(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("x")
    path.chmod(0o600)

    problem = file_problem(path, uid=os.geteuid() + 1)

    assert problem is not None and "owned by uid" in problem


def test_refapi_database_password_comes_from_the_store() -> None:
    from kaitiaki.refapi import create_app
    from kaitiaki.refapi.app import open_engine
    from kaitiaki.settings import RefApiSettings

    url = "postgresql+psycopg://app@127.0.0.1:5432/test"
    settings = RefApiSettings(database_url=url, database_password="env:PGPASS")
    secret = SecretStore({"PGPASS": VALUE}).resolve(
        "env:PGPASS", setting="refapi.database_password"
    )

    engine = open_engine(url, secret)

    assert engine.url.password == VALUE
    assert VALUE not in repr(engine.url) and VALUE not in str(engine.url)
    engine.dispose()
    with pytest.raises(ConfigError, match="database_password"):
        create_app(settings)


def _services(secret: str, store: SecretStore) -> object:
    """Token services opened as the gateway opens them, nonce secret from ``store``."""
    import asyncio

    import aiohttp

    from kaitiaki.settings import AuthSettings
    from kaitiaki.tokens.services import open_token_services

    auth = AuthSettings(
        issuer="https://issuer.example",
        audience="a",
        dpop={"nonce_secret": secret},
    )

    class NoKeys:
        async def get(self, kid: str) -> None:
            return None

    async def opened() -> object:
        async with aiohttp.ClientSession() as session:
            return open_token_services(auth, session, NoKeys(), lambda: 0.0, store)

    return asyncio.run(opened())


def test_token_secrets_come_from_the_gateways_secret_store(tmp_path: Path) -> None:
    """``vault:`` references work for token settings too, and ``file:`` ones
    must be owner-only there as everywhere else."""
    from kaitiaki.tokens.services import TokenServices

    reads: list[tuple[str, str]] = []

    def vault(path: str, field: str) -> str:
        reads.append((path, field))
        return "n" * 32

    services = _services("vault:kv/gateway#nonce", SecretStore({}, vault=vault))
    assert isinstance(services, TokenServices)
    assert reads == [("kv/gateway", "nonce")]
    same = _services("vault:kv/gateway#nonce", SecretStore({}, vault=vault))
    assert isinstance(same, TokenServices)
    assert same.nonces.accepts(services.nonces.issue(100), 100)

    loose = tmp_path / "nonce"
    loose.write_text("n" * 32)
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match=r"auth\.dpop\.nonce_secret"):
        _services(f"file:{loose}", SecretStore({}))
    with pytest.raises(ConfigError, match=r"\[secrets\.vault\]"):
        _services("vault:kv/gateway#nonce", SecretStore({}))
