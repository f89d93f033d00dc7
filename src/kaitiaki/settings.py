"""The one validated, immutable settings object, loaded from TOML.

``load_settings(None)`` returns the embedded demo settings that ``make run``
uses, so every ``kaitiaki`` command run from the repository root without
``--config`` talks to the running demo. Relative paths resolve against the
current directory.
"""

from __future__ import annotations

import ipaddress
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kaitiaki.errors import ConfigError

__all__ = [
    "AuditSettings",
    "AuthSettings",
    "CorsSettings",
    "DemoClient",
    "DevIssuerSettings",
    "GatewaySettings",
    "LimitSettings",
    "RefApiSettings",
    "Settings",
    "UpstreamAuthSettings",
    "ValidationSettings",
    "WafExclusion",
    "WafSettings",
    "load_settings",
]

#: Signature algorithms accepted unless the operator narrows the list.
DEFAULT_ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256")
SUPPORTED_ALGORITHMS = frozenset(
    {*DEFAULT_ALGORITHMS, "ES512", "PS384", "PS512", "RS256"}
)

Port = Annotated[int, Field(ge=0, le=65535)]
RateText = Annotated[str, Field(pattern=r"^\d+\s*(/|per)\s*\d*\s*[a-z]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewaySettings(_Frozen):
    """The listener and the upstream it protects."""

    host: str = "127.0.0.1"
    port: Port = 8080
    public_url: str | None = None
    fhir_base: str = "/fhir"
    upstream: str
    instance: str = "gateway-1"
    public_paths: tuple[str, ...] = ("/metadata",)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_uri_bytes: int = Field(default=4096, ge=256, le=65536)
    max_header_bytes: int = Field(default=16384, ge=1024, le=131072)
    max_header_count: int = Field(default=64, ge=8, le=512)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # Zero trust (docs/configuration.md, "Zero trust and the traffic filter").
    trusted_proxies: tuple[str, ...] = ()
    strip_cookies: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    allow_tls12: bool = False

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)

    @field_validator("fhir_base")
    @classmethod
    def _base_is_a_path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError(
                "fhir_base must look like '/fhir' (leading, no trailing /)"
            )
        return value

    @property
    def base_url(self) -> str:
        """The URL clients use for the FHIR base, as put in ``htu`` and links."""
        origin = self.public_url or f"http://{self.host}:{self.port}"
        return origin.rstrip("/") + self.fhir_base


class AuthSettings(_Frozen):
    """Which issuer's access tokens the gateway accepts, and how strictly."""

    issuer: str
    audience: str
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    allow_rs256: bool = False
    leeway_seconds: int = Field(default=30, ge=0, le=60)
    max_token_lifetime_seconds: int = Field(default=3600, ge=60, le=86400)
    require_at_jwt_typ: bool = True
    max_token_bytes: int = Field(default=8192, ge=512, le=65536)
    jwks_min_refresh_seconds: int = Field(default=60, ge=1, le=3600)
    jwks_max_age_seconds: int = Field(default=3600, ge=60, le=86400)
    jwks_stale_grace_seconds: int = Field(default=900, ge=0, le=86400)

    @field_validator("issuer", "audience")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - SUPPORTED_ALGORITHMS)
        if unknown or not value:
            raise ValueError(
                f"unsupported algorithms {unknown}; choose from "
                f"{sorted(SUPPORTED_ALGORITHMS)} (no 'none', no HMAC)"
            )
        return value

    def allowed_algorithms(self) -> frozenset[str]:
        """The allow-list, with RS256 only when ``allow_rs256`` names it."""
        allowed = set(self.algorithms)
        if not self.allow_rs256:
            allowed.discard("RS256")
        return frozenset(allowed)


class LimitSettings(_Frozen):
    """Request rates (``"600/minute"``), counted in memory for one process.

    ``address_rate`` is checked first, per client address, before any token is
    looked at; ``default_rate`` and ``clients`` apply per authenticated client.
    """

    address_rate: RateText = "1200/minute"
    default_rate: RateText = "120/minute"
    clients: dict[str, RateText] = Field(default_factory=dict)


class AuditSettings(_Frozen):
    """Where the one-event-per-request audit stream goes."""

    sink: Literal["sqlite", "jsonl", "stdout"] = "sqlite"
    path: str = "var/audit.sqlite"


class DemoClient(_Frozen):
    """A client the development issuer registers on first run."""

    client_id: str
    scope: str
    key_path: str


class DevIssuerSettings(_Frozen):
    """The development authorisation server (never for production)."""

    host: str = "127.0.0.1"
    port: Port = 8090
    state_dir: str = "var/issuer"
    token_lifetime_seconds: int = Field(default=600, ge=30, le=600)
    audience: str
    clients: tuple[DemoClient, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RefApiSettings(_Frozen):
    """The reference FHIR R4 API that ``make run`` puts behind the gateway."""

    host: str = "127.0.0.1"
    port: Port = 8081
    database_url: str = "sqlite:///var/refapi.sqlite"
    fhir_base: str = "/fhir"
    # Refuse requests that do not carry the gateway's signed assertion.
    gateway_assertion_key: str | None = None
    gateway_assertion_audience: str = "kaitiaki-refapi"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.fhir_base}"


class ValidationSettings(_Frozen):
    """Content rules beyond the wire format: search size, NZ identifiers."""

    max_count: int = Field(default=100, ge=1, le=1000)
    check_nz_identifiers: bool = True
    # Published test identifiers that fail their own check character, e.g. the
    # SDHR UAT fixtures ZMW9001..ZMW9009 (catalogue §3.2). Empty by default.
    identifier_allow_list: tuple[str, ...] = ()


def _check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for text in value:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a CIDR network like 10.0.0.0/8") from exc
    return value


class CorsSettings(_Frozen):
    """Browser origins allowed to call the API (exact match; never credentials)."""

    allow_origins: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = (
        "authorization",
        "content-type",
        "dpop",
        "if-match",
        "if-none-match",
        "prefer",
        "x-correlation-id",
    )
    expose_headers: tuple[str, ...] = ("location", "etag", "x-correlation-id")
    max_age_seconds: int = Field(default=600, ge=0, le=86400)

    @field_validator("allow_origins")
    @classmethod
    def _exact_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if "*" in origin or origin.endswith("/") or "://" not in origin:
                raise ValueError(
                    f"{origin!r}: list exact origins like 'https://app.example'"
                )
        return value


class WafExclusion(_Frozen):
    """Rules switched off for one route (a template or a path prefix)."""

    route: str
    rules: tuple[str, ...]
    targets: tuple[Literal["path", "query", "header", "body", "narrative"], ...] = ()

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Imported here: kaitiaki.waf itself imports these settings.
        from kaitiaki.waf.rules import rule_ids

        unknown = sorted(set(value) - rule_ids())
        if unknown or not value:
            raise ValueError(
                f"unknown rule ids {unknown}; the ids are listed in "
                "src/kaitiaki/waf/rules.py and appear in audit events (waf_rules)"
            )
        return value


class WafSettings(_Frozen):
    """The traffic filter: anomaly scoring like OWASP CRS, FHIR-aware."""

    enabled: bool = True
    detection_only: bool = False
    paranoia_level: int = Field(default=1, ge=1, le=4)
    inbound_threshold: int = Field(default=5, ge=1, le=100)
    # "*": every header but the credentials; or a list of header names.
    inspected_headers: tuple[str, ...] = ("*",)
    exclusions: tuple[WafExclusion, ...] = ()
    allow_networks: tuple[str, ...] = ()
    deny_networks: tuple[str, ...] = ()

    @field_validator("allow_networks", "deny_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)


class UpstreamAuthSettings(_Frozen):
    """How the gateway proves itself to the upstream (both may be used)."""

    assertion_key: str | None = None
    assertion_audience: str | None = None
    assertion_lifetime_seconds: int = Field(default=30, ge=5, le=60)
    assertion_header: str = "kaitiaki-gateway-assertion"
    client_cert: str | None = None
    client_key: str | None = None
    ca_file: str | None = None


class Settings(_Frozen):
    gateway: GatewaySettings
    auth: AuthSettings
    validation: ValidationSettings = ValidationSettings()
    limits: LimitSettings = LimitSettings()
    audit: AuditSettings = AuditSettings()
    cors: CorsSettings = CorsSettings()
    waf: WafSettings = WafSettings()
    upstream_auth: UpstreamAuthSettings = UpstreamAuthSettings()
    dev_issuer: DevIssuerSettings | None = None
    refapi: RefApiSettings | None = None


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
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    return parse_settings(text, source=str(path))
