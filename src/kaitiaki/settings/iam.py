"""Secrets, key rings and the admin plane: where secret references are
resolved, where keys are kept, and how the admin listener is reached."""

from __future__ import annotations

from pydantic import Field

from kaitiaki.iam import SecretReference
from kaitiaki.settings.base import Port, _Frozen

__all__ = ["AdminSettings", "KeySettings", "SecretsSettings", "VaultSettings"]


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
