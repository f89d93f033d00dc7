"""The one validated, immutable settings object, loaded from TOML.

``load_settings(None)`` returns the embedded demo settings that ``make run``
uses, so every ``kaitiaki`` command run from the repository root without
``--config`` talks to the running demo. Relative paths resolve against the
current directory.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kaitiaki.errors import ConfigError

__all__ = [
    "AuditSettings",
    "AuthSettings",
    "DemoClient",
    "DevIssuerSettings",
    "GatewaySettings",
    "LimitSettings",
    "RefApiSettings",
    "RestRoute",
    "Settings",
    "ValidationSettings",
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
    # Host header values accepted; empty means the public URL's host and the
    # listener's host. "name" matches any port, "name:port" only that port.
    allowed_hosts: tuple[str, ...] = ()

    @field_validator("fhir_base")
    @classmethod
    def _base_is_a_path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError(
                "fhir_base must look like '/fhir' (leading, no trailing /)"
            )
        return value

    def host_names(self) -> frozenset[str]:
        """Accepted Host values, lower-case: ``name`` or ``name:port``."""
        if self.allowed_hosts:
            return frozenset(name.lower() for name in self.allowed_hosts)
        names = {self.host.lower()}
        if self.public_url:
            names.add(urlsplit(self.public_url).netloc.lower())
        return frozenset(names)

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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.fhir_base}"


class ValidationSettings(_Frozen):
    """Content rules beyond the wire format: FHIR structure, search
    parameters, JSON sizes, NZ identifiers (docs/configuration.md)."""

    fhir_structure: bool = True
    require_accept: bool = False
    response_validation: Literal["off", "log", "block"] = "off"
    search_parameters: Literal["definitions", "capability"] = "definitions"
    extra_search_parameters: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    allow_unknown_search_parameters: bool = False
    max_json_depth: int = Field(default=64, ge=8, le=256)
    max_json_members: int = Field(default=1000, ge=16, le=100_000)
    max_json_items: int = Field(default=10_000, ge=16, le=1_000_000)
    max_json_string: int = Field(default=1_048_576, ge=256, le=64 * 1_048_576)
    compressed_bodies: bool = False
    max_inflated_bytes: int = Field(default=4 * 1_048_576, ge=1024, le=64 * 1_048_576)
    max_inflate_ratio: int = Field(default=20, ge=2, le=1000)
    max_count: int = Field(default=100, ge=1, le=1000)
    check_nz_identifiers: bool = True
    # The upstream keys Patients by NHI: Patient ids must be valid NHIs.
    nhi_patient_ids: bool = False
    # Published test identifiers that fail their own check character, e.g. the
    # SDHR UAT fixtures ZMW9001..ZMW9009 (catalogue §3.2). Empty by default.
    identifier_allow_list: tuple[str, ...] = ()


class RestRoute(_Frozen):
    """A non-FHIR route: requests below ``prefix`` are validated against the
    OpenAPI document and forwarded to ``upstream``."""

    prefix: str
    openapi: str
    upstream: str
    allow_unknown_query: bool = False

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError("prefix must look like '/api/v1' (leading, no trailing /)")
        return value


class Settings(_Frozen):
    gateway: GatewaySettings
    auth: AuthSettings
    validation: ValidationSettings = ValidationSettings()
    limits: LimitSettings = LimitSettings()
    audit: AuditSettings = AuditSettings()
    dev_issuer: DevIssuerSettings | None = None
    refapi: RefApiSettings | None = None
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
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    return parse_settings(text, source=str(path))
