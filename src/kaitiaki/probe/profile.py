"""The probe profile: what to probe, with which credentials, how gently.

Secrets are never written in a profile: a client secret is a reference
(``env:NAME`` or ``file:/path``) resolved when the probe starts, and a
private key is a path to a JWK file. ``demo_profile`` builds the profile of
the local demo from the embedded demo settings.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kaitiaki.errors import ConfigError
from kaitiaki.settings import Settings

__all__ = [
    "ClientProfile",
    "Profile",
    "demo_profile",
    "load_profile",
    "parse_profile",
    "resolve_secret",
    "tls_context",
]

SECRET_PREFIXES = ("env:", "file:")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def resolve_secret(reference: str, environ: dict[str, str] | None = None) -> str:
    """The value behind ``env:NAME`` or ``file:/path``."""
    kind, _, name = reference.partition(":")
    if kind == "env":
        value = (os.environ if environ is None else environ).get(name)
        if not value:
            raise ConfigError(f"secret reference {reference}: the variable is unset")
        return value
    try:
        return Path(name).read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"secret reference {reference}: cannot read the file: {exc.strerror}"
        ) from exc


class ClientProfile(_Frozen):
    """A client the probe gets tokens for: a private_key_jwt key file, or a
    client secret by reference."""

    client_id: str
    key_file: str | None = None
    secret: str | None = None
    auth_method: Literal["private_key_jwt", "client_secret_post"] = "private_key_jwt"
    scope: str | None = None

    @field_validator("secret")
    @classmethod
    def _reference_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(SECRET_PREFIXES):
            raise ValueError(
                "inline secrets are refused; write a reference: 'env:NAME' or "
                "'file:/path'"
            )
        return value

    def model_post_init(self, context: Any) -> None:
        if self.auth_method == "private_key_jwt" and not self.key_file:
            raise ValueError("private_key_jwt needs key_file (a JWK file path)")
        if self.auth_method == "client_secret_post" and not self.secret:
            raise ValueError("client_secret_post needs secret = 'env:NAME'")


class AuthProfile(_Frozen):
    issuer: str
    audience: str | None = None
    token_endpoint: str | None = None
    discovery_url: str | None = None


class RoutesProfile(_Frozen):
    """What to exercise; empty ``resource_types`` discovers them from
    ``BASE/metadata``."""

    resource_types: tuple[str, ...] = ()
    read_type: str | None = None
    other_type: str | None = None
    search_parameter: str | None = None
    public_paths: tuple[str, ...] = ("metadata",)


class SafetyProfile(_Frozen):
    allow_writes: bool = False
    allow_destructive: bool = False
    allow_disruptive: bool = False
    max_requests: int = Field(default=600, ge=10, le=20000)
    rate_per_second: float = Field(default=20.0, gt=0, le=200)
    burst_max: int = Field(default=300, ge=5, le=5000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class TlsProfile(_Frozen):
    """Trust for the target's certificate: the system store, or a CA file
    (a private CA); verification is never switched off."""

    ca_file: str | None = None


class LoggingProfile(_Frozen):
    """Operator-supplied access to what the target logged."""

    files: tuple[str, ...] = ()
    audit_sqlite: str | None = None
    audit_jsonl: str | None = None


class DependencyProfile(_Frozen):
    requirements: tuple[str, ...] = ()
    sbom: str | None = None
    advisories: str | None = None


class Profile(_Frozen):
    name: str = "profile"
    auth: AuthProfile
    clients: dict[
        Annotated[str, Field(pattern="^(reader|writer|other|narrow)$")], ClientProfile
    ]
    routes: RoutesProfile = RoutesProfile()
    request_context: dict[str, Any] | None = None
    request_context_header: str = "Request-Context"
    safety: SafetyProfile = SafetyProfile()
    tls: TlsProfile = TlsProfile()
    logging: LoggingProfile = LoggingProfile()
    dependencies: DependencyProfile = DependencyProfile()

    def model_post_init(self, context: Any) -> None:
        if "reader" not in self.clients:
            raise ValueError("clients.reader is required (a read-only client)")

    def capabilities(self) -> frozenset[str]:
        """The ``needs`` of checks that this profile satisfies."""
        safety = self.safety
        granted = {
            "writes": safety.allow_writes and "writer" in self.clients,
            "destructive": safety.allow_destructive,
            "disruptive": safety.allow_disruptive and "other" in self.clients,
            "logs": bool(
                self.logging.files
                or self.logging.audit_sqlite
                or self.logging.audit_jsonl
            ),
            "sbom": bool(self.dependencies.sbom or self.dependencies.requirements),
        }
        return frozenset(name for name, ok in granted.items() if ok)


def tls_context(profile: Profile) -> ssl.SSLContext:
    """The context that verifies the target's certificate for this profile."""
    try:
        return ssl.create_default_context(cafile=profile.tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls.ca_file: cannot load {profile.tls.ca_file}: {exc}"
        ) from exc


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
        for item in error.errors()
    )


def parse_profile(data: dict[str, Any], *, source: str) -> Profile:
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc


def load_profile(path: str | Path) -> Profile:
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read probe profile {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_profile(data, source=str(path))


_DEMO_ROLES = {"reader": "demo-system", "other": "demo-writer", "writer": "demo-writer"}


def demo_profile(settings: Settings) -> Profile:
    """The profile of the local demo: its issuer, its seeded clients and
    their key files, writes and bursts allowed (the demo holds synthetic data).
    """
    issuer = settings.dev_issuer
    if issuer is None:
        raise ConfigError("the settings have no [dev_issuer] section to probe")
    keys = {client.client_id: client.key_path for client in issuer.clients}
    clients: dict[str, Any] = {
        role: {"client_id": client_id, "key_file": keys[client_id]}
        for role, client_id in _DEMO_ROLES.items()
        if client_id in keys
    }
    if "demo-narrow" in keys:
        clients["narrow"] = {
            "client_id": "demo-narrow",
            "key_file": keys["demo-narrow"],
        }
    data: dict[str, Any] = {
        "name": "kaitiaki demo",
        "auth": {"issuer": settings.auth.issuer, "audience": settings.auth.audience},
        "clients": clients,
        "routes": {"read_type": "Patient", "other_type": "Observation"},
        "request_context": _DEMO_CONTEXT,
        "safety": {
            "allow_writes": True,
            "allow_destructive": True,
            "allow_disruptive": True,
            "max_requests": 2000,
            "rate_per_second": 50,
            "burst_max": 900,
        },
        "logging": _demo_logging(settings),
        "dependencies": {},
    }
    return parse_profile(data, source="demo profile")


def _demo_logging(settings: Settings) -> dict[str, Any]:
    audit = settings.audit
    if audit.sink == "sqlite":
        return {"audit_sqlite": audit.path}
    if audit.sink == "jsonl":
        return {"audit_jsonl": audit.path}
    return {}


# A synthetic system-context Request-Context (v1 shape, userRole 110150).
_DEMO_CONTEXT: dict[str, Any] = {
    "userIdentifier": "kaitiaki-probe",
    "userRole": "110150",
    "purposeOfUse": ["TREAT"],
    "userFullName": "Kaitiaki Probe",
}
