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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kaitiaki.errors import ConfigError
from kaitiaki.iam import SecretReference, check_owner_only
from kaitiaki.limits.config import LimitSettings

__all__ = [
    "AdminSettings",
    "AuditSettings",
    "AuthSettings",
    "DemoClient",
    "DevIssuerSettings",
    "GatewaySettings",
    "KeySettings",
    "LimitSettings",
    "RefApiSettings",
    "SecretsSettings",
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
    # Worker processes sharing the listener. Above 1, counters in memory are
    # per process: use a shared limit store for exact limits.
    workers: int = Field(default=1, ge=1, le=64)

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
    # Tokens for the admin plane, issued when a client asks for this resource.
    admin_audience: str | None = None
    clients: tuple[DemoClient, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RefApiSettings(_Frozen):
    """The reference FHIR R4 API that ``make run`` puts behind the gateway."""

    host: str = "127.0.0.1"
    port: Port = 8081
    database_url: str = "sqlite:///var/refapi.sqlite"
    # The database password, when the URL needs one: a reference, never inline.
    database_password: SecretReference | None = None
    fhir_base: str = "/fhir"
    # Key rings of the at-rest encryption ("refapi-data") and the blind index
    # ("refapi-index"); created owner-only on first start.
    key_dir: str = "var/keys"

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


class VaultSettings(_Frozen):
    """Where ``vault:`` secret references are read from."""

    url: str
    token: SecretReference
    namespace: str | None = None
    ca_file: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class SecretsSettings(_Frozen):
    """The secret store: ``env:`` and ``file:`` need nothing; ``vault:`` does."""

    vault: VaultSettings | None = None


class KeySettings(_Frozen):
    """The key rings Kaitiaki holds, one owner-only directory per kind."""

    dir: str = "var/keys"
    # How long a rotated-out key keeps verifying (tokens, checkpoints, HMACs).
    overlap_seconds: int = Field(default=86400, ge=0, le=30 * 86400)


class AdminSettings(_Frozen):
    """The admin listener: its own address, token audience and Cedar policies."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 8079
    audience: str = "kaitiaki-admin"
    # None: the shipped least-privilege policies.
    policy_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # A CA bundle here turns on mTLS: clients must present a certificate.
    client_ca: str | None = None
    # The kill switch's state: suspended client ids, kept across restarts.
    suspensions_file: str = "var/admin/suspended-clients.json"
    audit_query_limit: int = Field(default=200, ge=1, le=10000)

    @property
    def mtls(self) -> bool:
        return bool(self.tls_cert and self.tls_key and self.client_ca)


class Settings(_Frozen):
    gateway: GatewaySettings
    auth: AuthSettings
    validation: ValidationSettings = ValidationSettings()
    limits: LimitSettings = LimitSettings()
    audit: AuditSettings = AuditSettings()
    dev_issuer: DevIssuerSettings | None = None
    refapi: RefApiSettings | None = None
    secrets: SecretsSettings = SecretsSettings()
    keys: KeySettings = KeySettings()
    admin: AdminSettings = AdminSettings()


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
