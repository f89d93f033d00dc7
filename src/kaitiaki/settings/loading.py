"""The whole settings object and how it is read: TOML validated once, from a
file only its owner may read, or the embedded demo settings."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError, model_validator

from kaitiaki.errors import ConfigError
from kaitiaki.iam import check_owner_only
from kaitiaki.limits.config import LimitSettings
from kaitiaki.settings.audit import AuditSettings, MetricsSettings
from kaitiaki.settings.auth import AuthSettings
from kaitiaki.settings.authorise import AuthoriseSettings
from kaitiaki.settings.base import _Frozen
from kaitiaki.settings.demo import DevIssuerSettings, RefApiSettings
from kaitiaki.settings.gateway import (
    CorsSettings,
    GatewaySettings,
    RestRoute,
    UpstreamAuthSettings,
)
from kaitiaki.settings.iam import AdminSettings, KeySettings, SecretsSettings
from kaitiaki.settings.validation import ValidationSettings
from kaitiaki.settings.waf import WafSettings

__all__ = ["Settings", "load_settings", "parse_settings"]


class Settings(_Frozen):
    gateway: GatewaySettings
    auth: AuthSettings
    authorise: AuthoriseSettings = AuthoriseSettings()
    validation: ValidationSettings = ValidationSettings()
    limits: LimitSettings = LimitSettings()
    audit: AuditSettings = AuditSettings()
    metrics: MetricsSettings = MetricsSettings()
    cors: CorsSettings = CorsSettings()
    waf: WafSettings = WafSettings()
    upstream_auth: UpstreamAuthSettings = UpstreamAuthSettings()
    dev_issuer: DevIssuerSettings | None = None
    refapi: RefApiSettings | None = None
    secrets: SecretsSettings = SecretsSettings()
    keys: KeySettings = KeySettings()
    admin: AdminSettings = AdminSettings()
    rest: tuple[RestRoute, ...] = ()

    @model_validator(mode="after")
    def _rest_prefixes_apart(self) -> Settings:
        base = self.gateway.fhir_base
        for route in self.rest:
            for one, other in ((route.prefix, base), (base, route.prefix)):
                if one == other or one.startswith(other + "/"):
                    raise ValueError(f"rest prefix {route.prefix} overlaps fhir_base")
        return self


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_settings(text: str, *, source: str) -> Settings:
    """Validate TOML text into :class:`Settings`; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc


def load_settings(path: str | Path | None) -> Settings:
    """Load settings from ``path``, or the embedded demo settings when None."""
    if path is None:
        text = resources.files("kaitiaki").joinpath("demo.toml").read_text("utf-8")
        return parse_settings(text, source="embedded demo settings")
    # The settings file names where secrets live: only its owner may read it.
    check_owner_only(Path(path), "settings file")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    return parse_settings(text, source=str(path))
