"""The listener and what it lets through (hosts, sizes, TLS, browser
origins), and the upstreams behind it with how the gateway proves itself."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from kaitiaki.settings.base import Port, _check_networks, _Frozen

__all__ = ["CorsSettings", "GatewaySettings", "RestRoute", "UpstreamAuthSettings"]


class GatewaySettings(_Frozen):
    """The listener and the upstream it protects."""

    host: str = "127.0.0.1"
    port: Port = 8080
    public_url: str | None = None
    fhir_base: str = "/fhir"
    # Required by `kaitiaki serve`; kaitiaki.protect calls its application
    # in process instead, and sets it to the public base itself.
    upstream: str = ""
    instance: str = "gateway-1"
    public_paths: tuple[str, ...] = ("/metadata", "/.well-known/*")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_uri_bytes: int = Field(default=4096, ge=256, le=65536)
    max_header_bytes: int = Field(default=16384, ge=1024, le=131072)
    max_header_count: int = Field(default=64, ge=8, le=512)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # The longest wait for the next piece of a request body once the gateway
    # reads it (nginx's client_body_timeout): a body trickled or left unsent
    # gets 408 instead of holding a task and a connection for ever.
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # The longest a whole request body may take, however steadily it comes:
    # a body trickled a byte at a time, each within body_timeout_seconds,
    # would otherwise hold its task for hours.
    body_deadline_seconds: float = Field(default=120.0, gt=0, le=3600)
    # The longest from a connection's opening, or a request's first byte, to
    # the end of its head (nginx's client_header_timeout): 408, then close.
    head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
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


class UpstreamAuthSettings(_Frozen):
    """How the gateway proves itself to the upstream (both may be used)."""

    assertion_key: str | None = None
    assertion_audience: str | None = None
    assertion_lifetime_seconds: int = Field(default=30, ge=5, le=60)
    assertion_header: str = "kaitiaki-gateway-assertion"
    client_cert: str | None = None
    client_key: str | None = None
    ca_file: str | None = None


class RestRoute(_Frozen):
    """A non-FHIR route: requests below ``prefix`` are validated against the
    OpenAPI document and forwarded to ``upstream``."""

    prefix: str
    openapi: str
    upstream: str = ""  # required by `kaitiaki serve`, set by kaitiaki.protect
    allow_unknown_query: bool = False

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError("prefix must look like '/api/v1' (leading, no trailing /)")
        return value
