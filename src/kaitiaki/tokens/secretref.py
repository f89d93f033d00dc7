"""Resolve a secret reference (``env:NAME`` or ``file:/path``) to its value.

The one place token code turns a reference from the settings into a secret;
the environment is passed in by the caller (the CLI), never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kaitiaki.errors import ConfigError

__all__ = ["resolve_secret"]


def resolve_secret(reference: str, environ: Mapping[str, str], *, setting: str) -> str:
    """The secret ``reference`` names; ``setting`` names it in errors."""
    kind, _, name = reference.partition(":")
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
