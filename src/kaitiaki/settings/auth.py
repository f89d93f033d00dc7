"""Which access tokens the gateway accepts: issuer, audience and algorithms,
introspection of opaque tokens, and the DPoP or mTLS proof a route demands."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kaitiaki.iam import SecretReference
from kaitiaki.settings.base import _Frozen

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "AuthSettings",
    "DpopSettings",
    "IntrospectionSettings",
    "MtlsSettings",
    "SenderConstraint",
]

#: Signature algorithms accepted unless the operator narrows the list.
DEFAULT_ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,256}")
_SCOPE_LIST = re.compile(r"[\x21-\x7e]{1,256}( [\x21-\x7e]{1,256}){0,31}")
SUPPORTED_ALGORITHMS = frozenset(
    {*DEFAULT_ALGORITHMS, "ES512", "PS384", "PS512", "RS256"}
)


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
