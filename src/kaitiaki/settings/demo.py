"""The development stack that ``make run`` starts around the gateway: the
development issuer and the reference FHIR API (never for production)."""

from __future__ import annotations

from pydantic import Field

from kaitiaki.iam import SecretReference
from kaitiaki.settings.base import Port, _Frozen

__all__ = ["DemoClient", "DevIssuerSettings", "RefApiSettings"]


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
