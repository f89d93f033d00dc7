"""The one validated, immutable settings object, loaded from TOML.

``load_settings(None)`` returns the embedded demo settings that ``make run``
uses, so every ``kaitiaki`` command run from the repository root without
``--config`` talks to the running demo. Relative paths resolve against the
current directory.
"""

from __future__ import annotations

import ipaddress
import re
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
from kaitiaki.fhir.interactions import INTERACTION_NAMES
from kaitiaki.iam import SecretReference, check_owner_only
from kaitiaki.limits.config import LimitSettings

__all__ = [
    "AdminSettings",
    "AuditSettings",
    "AuthSettings",
    "AuthoriseSettings",
    "CorsSettings",
    "DemoClient",
    "DevIssuerSettings",
    "DpopSettings",
    "GatewaySettings",
    "IntrospectionSettings",
    "KeySettings",
    "LimitSettings",
    "MetricsSettings",
    "MtlsSettings",
    "RefApiSettings",
    "RequestContextSettings",
    "RestRoute",
    "RoutePolicy",
    "SecretsSettings",
    "Settings",
    "UpstreamAuthSettings",
    "ValidationSettings",
    "WafExclusion",
    "WafSettings",
    "load_settings",
]

#: Signature algorithms accepted unless the operator narrows the list.
DEFAULT_ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,256}")
_SCOPE_LIST = re.compile(r"[\x21-\x7e]{1,256}( [\x21-\x7e]{1,256}){0,31}")
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
    public_paths: tuple[str, ...] = ("/metadata", "/.well-known/*")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_uri_bytes: int = Field(default=4096, ge=256, le=65536)
    max_header_bytes: int = Field(default=16384, ge=1024, le=131072)
    max_header_count: int = Field(default=64, ge=8, le=512)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # Worker processes sharing the listener. Above 1, counters in memory are
    # per process: use a shared limit store for exact limits.
    workers: int = Field(default=1, ge=1, le=64)
    # Host header values accepted; empty means the public URL's host and the
    # listener's host. "name" matches any port, "name:port" only that port.
    allowed_hosts: tuple[str, ...] = ()
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


#: Which proof of possession a route demands of its access tokens.
SenderConstraint = Literal["optional", "dpop", "mtls", "either"]


class IntrospectionSettings(_Frozen):
    """RFC 7662 introspection of opaque access tokens, client-authenticated."""

    endpoint: str | None = None
    client_id: str
    auth_method: Literal["client_secret_basic", "private_key_jwt"] = "private_key_jwt"
    client_secret: SecretReference | None = None
    private_key_path: str | None = None
    cache_seconds: int = Field(default=30, ge=0, le=300)
    max_cache_entries: int = Field(default=10_000, ge=10, le=1_000_000)
    timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    max_concurrent_calls: int = Field(default=32, ge=1, le=1024)
    require_audience: bool = True

    @model_validator(mode="after")
    def _credential_for_method(self) -> IntrospectionSettings:
        if self.auth_method == "client_secret_basic" and not self.client_secret:
            raise ValueError("client_secret_basic needs client_secret = 'env:NAME'")
        if self.auth_method == "private_key_jwt" and not self.private_key_path:
            raise ValueError("private_key_jwt needs private_key_path")
        return self


class DpopSettings(_Frozen):
    """DPoP proofs (RFC 9449): algorithms, freshness, replay store, nonces."""

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    max_age_seconds: int = Field(default=60, ge=5, le=300)
    max_proof_bytes: int = Field(default=8192, ge=1024, le=32768)
    require_nonce: bool = False
    nonce_secret: SecretReference | None = None
    nonce_lifetime_seconds: int = Field(default=300, ge=30, le=3600)
    replay_store: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field(default="kaitiaki:dpop:", min_length=1, max_length=64)
    max_replay_entries: int = Field(default=100_000, ge=100, le=10_000_000)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - SUPPORTED_ALGORITHMS)
        if unknown or not value:
            raise ValueError(f"unsupported DPoP algorithms {unknown}")
        return value


class MtlsSettings(_Frozen):
    """Where the client certificate for RFC 8705 binding comes from.

    The TLS connection's certificate (ASGI ``tls`` extension) is always used
    when present. ``certificate_header`` is read only from a peer whose
    address is in ``trusted_proxies``; from anyone else it is ignored.
    """

    certificate_header: str | None = None
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an address or network") from exc
        return value

    @field_validator("certificate_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None


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
    verified_token_cache: int = Field(default=10_000, ge=0, le=1_000_000)
    # Entra ID application permissions: a ``roles`` value → SMART scopes.
    role_scopes: dict[str, str] = Field(default_factory=dict)
    introspection: IntrospectionSettings | None = None
    dpop: DpopSettings = DpopSettings()
    mtls: MtlsSettings = MtlsSettings()
    sender_constraint: SenderConstraint = "optional"
    sender_constraint_routes: dict[str, SenderConstraint] = Field(default_factory=dict)

    @field_validator("issuer", "audience")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("role_scopes")
    @classmethod
    def _role_scopes(cls, value: dict[str, str]) -> dict[str, str]:
        for role, scopes in value.items():
            if not _PRINTABLE.fullmatch(role) or not _SCOPE_LIST.fullmatch(scopes):
                raise ValueError(
                    "each role maps to space-separated scopes, e.g. "
                    '"Fhir.Read.All" = "system/*.rs"'
                )
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

    @field_validator("sender_constraint_routes")
    @classmethod
    def _route_prefixes(
        cls, value: dict[str, SenderConstraint]
    ) -> dict[str, SenderConstraint]:
        for prefix in value:
            if not prefix.startswith("/"):
                raise ValueError(
                    f"route {prefix!r} must start with '/' (below fhir_base)"
                )
        return value

    def sender_constraint_for(self, path: str) -> SenderConstraint:
        """The requirement for a path below the FHIR base (longest prefix wins)."""
        best, found = -1, self.sender_constraint
        for prefix, value in self.sender_constraint_routes.items():
            matches = path == prefix or path.startswith(prefix.rstrip("/") + "/")
            if matches and len(prefix) > best:
                best, found = len(prefix), value
        return found

    def allowed_algorithms(self) -> frozenset[str]:
        """The allow-list, with RS256 only when ``allow_rs256`` names it."""
        allowed = set(self.algorithms)
        if not self.allow_rs256:
            allowed.discard("RS256")
        return frozenset(allowed)


class AuditSettings(_Frozen):
    """Where the one-event-per-request audit stream goes, how durably, and
    the keys of its hash chain and pseudonyms (see docs/configuration.md)."""

    sink: Literal["sqlite", "jsonl", "postgresql", "stdout"] = "sqlite"
    path: str = "var/audit.sqlite"
    database_url: str | None = None
    table: str = Field(default="audit_event", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    durability: Literal["strict", "batched"] = "strict"
    queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    flush_interval_seconds: float = Field(default=0.2, gt=0, le=10)
    degraded_mode: Literal["refuse", "serve_unaudited"] = "refuse"
    rotate_bytes: int = Field(default=64 * 1_048_576, ge=4096)
    rotate_keep: int = Field(default=0, ge=0, le=10_000)
    checkpoint_every_events: int = Field(default=1000, ge=1, le=1_000_000)
    checkpoint_every_seconds: float = Field(default=60.0, gt=0, le=86400)
    hmac_key_file: str | None = None
    checkpoint_key_file: str | None = None

    @model_validator(mode="after")
    def _postgresql_has_a_url(self) -> AuditSettings:
        if self.sink == "postgresql" and not self.database_url:
            raise ValueError("sink 'postgresql' needs database_url")
        return self

    def key_paths(self) -> tuple[Path, Path]:
        """The HMAC and checkpoint key files; by default in ``keys/`` beside
        the audit file."""
        folder = Path(self.path).parent / "keys"
        return (
            Path(self.hmac_key_file or folder / "audit-hmac.key"),
            Path(self.checkpoint_key_file or folder / "audit-checkpoint.jwk"),
        )

    def head_path(self, instance: str) -> Path:
        """Where the latest checkpoint of ``instance`` is kept outside the sink."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in instance)
        return self.key_paths()[1].parent / f"audit-head.{safe}.json"


class MetricsSettings(_Frozen):
    """The Prometheus listener: off by default, loopback-only unless the
    operator names ``expose_beyond_loopback``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 9464
    expose_beyond_loopback: bool = False

    @model_validator(mode="after")
    def _loopback_unless_named(self) -> MetricsSettings:
        loopback = self.host in ("127.0.0.1", "::1", "localhost")
        if not loopback and not self.expose_beyond_loopback:
            raise ValueError(
                f"host {self.host!r} is not loopback; set "
                "expose_beyond_loopback = true to serve metrics beyond this machine"
            )
        return self


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
    # Refuse requests that do not carry the gateway's signed assertion.
    gateway_assertion_key: str | None = None
    gateway_assertion_audience: str = "kaitiaki-refapi"

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


#: HL7 v3 PurposeOfUse codes, the v2 schema's SCREENING and the NZ codes
#: (catalogue §2.4); NOTSUPPLIED is an audit-only marker and not accepted.
DEFAULT_PURPOSES = (
    "BIORCH", "BTG", "CAREMGT", "CLINTRCH", "CLINTRL", "CLMATTCH", "COC",
    "COVAUTH", "COVERAGE", "DECEASED", "DISASTER", "DONAT", "DSRCH", "ELIGDTRM",
    "ELIGVER", "ENROLLM", "ERTREAT", "ETREAT", "FAMRQT", "FRAUD", "GOV",
    "HACCRED", "HCOMPL", "HDECD", "HDIRECT", "HDM", "HLEGAL", "HMARKT",
    "HOPERAT", "HOUTCOMS", "HPAYMT", "HPRGRP", "HQUALIMP", "HRESCH",
    "HSYSADMIN", "HTEST", "LABELING", "MEMADMIN", "METAMGT", "MILCDM",
    "MILDCRG", "PATADMIN", "PATRQT", "PATSFTY", "PERFMSR", "POARCH", "POPHLTH",
    "PRECLINTRCH", "PUBHLTH", "PWATRNY", "RECORDMGT", "REMITADV", "SCREENING",
    "SUPNWK", "SYSDEV", "THREAT", "TRAIN", "TRANSRCH", "TREAT",
    "NZLEG", "NZRISK", "NZCHILD", "NZSCREEN",
)  # fmt: skip

GrantPolicy = Literal["forbid", "with_request_context", "allow"]


class RequestContextSettings(_Frozen):
    """How the Health NZ ``Request-Context`` header is decoded and checked."""

    schema_version: Literal["v1", "v2", "auto"] = "auto"
    max_bytes: int = Field(default=4096, ge=256, le=16384)
    purpose_of_use: tuple[str, ...] = DEFAULT_PURPOSES
    user_roles: tuple[str, ...] = ("PROV", "PAT", "110150")
    # additionalProperties: false, as the standard's example spec declares it.
    strict: bool = False
    # The RF guide shows purposeOfUse as one string; the schemas need an array.
    accept_purpose_string: bool = False
    # Contracts per client id: the purposes it may declare, the organisation
    # it is registered for (catalogue §2.6 rules 4 and 7). Unlisted: no limit.
    client_purposes: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    client_organisations: dict[str, str] = Field(default_factory=dict)


class RoutePolicy(_Frozen):
    """A named policy for some interactions on some resource types.

    Empty ``interactions`` or ``resource_types`` match every one; unset
    fields fall back to the ``[authorise]`` defaults.
    """

    name: str
    interactions: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] = ()
    client_credentials: GrantPolicy | None = None
    min_acr: str | None = None
    request_context: Literal["required", "optional"] | None = None
    # The data classification of what the route serves (catalogue CLS-01):
    # `kaitiaki check-config` asks for it; unset counts as MEDICAL IN-CONFIDENCE.
    classification: Literal["UNCLASSIFIED", "MEDICAL IN-CONFIDENCE"] | None = None

    @field_validator("interactions")
    @classmethod
    def _known_interactions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A misspelt name would silently match nothing and weaken the policy.
        unknown = sorted(set(value) - INTERACTION_NAMES)
        if unknown:
            raise ValueError(
                f"unknown interactions {unknown}; choose from "
                f"{sorted(INTERACTION_NAMES)}"
            )
        return value


class AuthoriseSettings(_Frozen):
    """Grant, assurance and Request-Context policy; the first matching route wins."""

    client_credentials: GrantPolicy = "with_request_context"
    min_acr: str = "3"
    acr_levels: tuple[str, ...] = ("0", "1", "2", "3")
    request_context: Literal["required", "optional"] = "optional"
    required_scopes: tuple[str, ...] = ()
    # URL prefixes of SMART scopes meant for this API, besides its own base URL
    # (Health NZ writes https://api.hip.digital.health.nz/fhir/system/Patient.r).
    scope_prefixes: tuple[str, ...] = ()
    operations: dict[str, str] = Field(default_factory=dict)
    max_bundle_entries: int = Field(default=100, ge=1, le=1000)
    routes: tuple[RoutePolicy, ...] = ()
    context: RequestContextSettings = RequestContextSettings()

    @model_validator(mode="after")
    def _acr_levels_known(self) -> AuthoriseSettings:
        wanted = [self.min_acr, *(r.min_acr for r in self.routes if r.min_acr)]
        unknown = sorted(set(wanted) - set(self.acr_levels))
        if unknown:
            raise ValueError(
                f"min_acr values {unknown} are not in acr_levels "
                f"{list(self.acr_levels)} (lowest first)"
            )
        return self


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
