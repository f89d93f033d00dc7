"""Resolve a secret reference to its value.

The one place token code turns a reference from the settings into a secret.
The gateway passes its :class:`~kaitiaki.iam.SecretStore` (``env:``,
owner-only ``file:`` and, when ``[secrets.vault]`` is set, ``vault:``); a
plain mapping stands for the environment alone (``env:`` and ``file:``), for
callers without settings. The environment is never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kaitiaki.errors import ConfigError
from kaitiaki.iam import SecretRef, SecretStore

__all__ = ["SecretSource", "resolve_secret"]

SecretSource = Mapping[str, str] | SecretStore


def resolve_secret(
    reference: SecretRef | str, environ: SecretSource, *, setting: str
) -> str:
    """The secret ``reference`` names; ``setting`` names it in errors."""
    if isinstance(environ, SecretStore):
        return environ.resolve(reference, setting=setting).reveal()
    kind, _, name = str(reference).partition(":")
    if kind == "env":
        value = environ.get(name)
        if not value:
            raise ConfigError(f"{setting}: environment variable {name} is not set")
        return value
    if kind == "file":
        try:
            value = Path(name).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{setting}: cannot read {name}: {exc.strerror}") from exc
        if not value:
            raise ConfigError(f"{setting}: {name} is empty")
        return value
    raise ConfigError(f"{setting}: use 'env:NAME' or 'file:/path'")
