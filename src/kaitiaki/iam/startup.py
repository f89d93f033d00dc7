"""Refusals at start-up: no empty, default or example credential anywhere, and
no admin listener on a public address without mTLS (CFG-01: a vendor's
documented default admin key opened exposed admin APIs)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kaitiaki.errors import ConfigError
from kaitiaki.iam.files import file_problem
from kaitiaki.iam.secrets import SecretRef, SecretStore
from kaitiaki.settings import AdminSettings, Settings

__all__ = [
    "EXAMPLE_VALUES",
    "admin_problems",
    "credential_problems",
    "is_loopback",
    "key_problems",
    "refuse_unsafe_start",
    "secret_references",
    "secret_store",
    "weak_credential",
]

#: Default and documented example credentials, compared case-insensitively.
EXAMPLE_VALUES = frozenset(
    {
        "admin",
        "administrator",
        "changeit",
        "changeme",
        "change-me",
        "change_me",
        "default",
        "example",
        "guest",
        "kaitiaki",
        "letmein",
        "password",
        "passw0rd",
        "placeholder",
        "postgres",
        "qwerty",
        "replace-me",
        "root",
        "secret",
        "test",
        "12345678",
        "123456789",
        # The examples our own documentation shows (docs/configuration.md).
        "hvs.example-vault-token",
        "example-upstream-credential",
        # Apache APISIX's documented default admin and viewer keys (CFG-01).
        "edd1c9f034335f136f87ad84b625c8f1",
        "4054f7cf07e344346cd3f287985e76a2",
    }
)
_EXAMPLE_MARKS = ("changeme", "change-me", "replace-me", "placeholder", "example")
_MIN_LENGTH = 8


def weak_credential(value: str) -> str | None:
    """Why ``value`` may not be used as a credential, or None."""
    text = value.strip().lower()
    if not text:
        return "is empty"
    if text in EXAMPLE_VALUES:
        return "is a default or documented example value"
    if text.startswith("<") or any(mark in text for mark in _EXAMPLE_MARKS):
        return "looks like a placeholder or example value"
    if len(text) < _MIN_LENGTH:
        return f"is shorter than {_MIN_LENGTH} characters"
    return None


def secret_references(
    model: BaseModel, prefix: str = ""
) -> Iterator[tuple[str, SecretRef]]:
    """Every secret reference in the settings, with its dotted key."""
    for name in type(model).model_fields:
        yield from _references(getattr(model, name), f"{prefix}{name}")


def _references(value: Any, where: str) -> Iterator[tuple[str, SecretRef]]:
    if isinstance(value, SecretRef):
        yield where, value
    elif isinstance(value, BaseModel):
        yield from secret_references(value, f"{where}.")
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _references(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _references(item, f"{where}.{key}")


def credential_problems(settings: Settings, store: SecretStore) -> list[str]:
    """Each secret the settings name that is missing, empty, default or an example."""
    problems = []
    for where, reference in secret_references(settings):
        try:
            secret = store.resolve(reference, setting=where)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        reason = weak_credential(secret.reveal())
        if reason is not None:
            problems.append(f"{where}: the secret at {reference} {reason}")
    return problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_problems(admin: AdminSettings) -> list[str]:
    """Why the admin listener may not start as configured."""
    if not admin.enabled:
        return []
    problems = []
    if not is_loopback(admin.host) and not admin.mtls:
        problems.append(
            f"admin.host {admin.host} is not a loopback address: the admin listener "
            "needs mTLS there (admin.tls_cert, admin.tls_key and admin.client_ca)"
        )
    if bool(admin.tls_cert) != bool(admin.tls_key):
        problems.append("admin.tls_cert and admin.tls_key must be set together")
    if admin.client_ca and not admin.tls_cert:
        problems.append("admin.client_ca (mTLS) needs admin.tls_cert and admin.tls_key")
    for name in ("tls_key", "policy_file"):
        path = getattr(admin, name)
        problem = file_problem(Path(path)) if path else None
        if problem is not None:
            problems.append(f"admin.{name} {path} {problem}")
    return problems


def key_problems(settings: Settings) -> list[str]:
    """Loose or foreign-owned key files and key directories in the key store."""
    from kaitiaki.iam.keyring import KEY_KINDS
    from kaitiaki.iam.rotation import AUDIT_KINDS, ring_for

    problems = []
    hmac_path, checkpoint_path = settings.audit.key_paths()
    audit_files = (
        ("identifier-hmac", hmac_path),
        ("audit-checkpoint", checkpoint_path),
    )
    for kind, path in audit_files:
        problem = file_problem(path) if path.exists() else None
        if problem is not None:
            problems.append(f"{kind} key file {path} {problem}")
    for kind in KEY_KINDS:
        if kind in AUDIT_KINDS:
            continue
        ring = ring_for(kind, settings)
        if not ring.directory.is_dir():
            continue
        if ring.directory.stat().st_mode & 0o077:
            problems.append(
                f"key directory {ring.directory} is open to group or others; "
                f"run 'chmod 700 {ring.directory}'"
            )
        files = [ring.current_path, *sorted((ring.directory / "retired").glob("*"))]
        for path in files:
            problem = file_problem(path) if path.exists() else None
            if problem is not None:
                problems.append(f"{kind} key file {path} {problem}")
    return problems


def refuse_unsafe_start(settings: Settings, store: SecretStore) -> None:
    """Raise :class:`ConfigError` listing every reason not to start."""
    problems = credential_problems(settings, store) + admin_problems(settings.admin)
    problems += key_problems(settings)
    if problems:
        raise ConfigError("refusing to start: " + "; ".join(problems))


def secret_store(settings: Settings, environ: Mapping[str, str]) -> SecretStore:
    """The secret store the settings describe; Vault only when configured."""
    vault = settings.secrets.vault
    if vault is None:
        return SecretStore(environ)
    if vault.token.scheme == "vault":
        raise ConfigError("secrets.vault.token: use an 'env:' or 'file:' reference")
    from kaitiaki.iam.vault import VaultReader

    token = SecretStore(environ).resolve(vault.token, setting="secrets.vault.token")
    reader = VaultReader(
        vault.url,
        token,
        namespace=vault.namespace,
        ca_file=vault.ca_file,
        timeout_seconds=vault.timeout_seconds,
    )
    return SecretStore(environ, vault=reader)
