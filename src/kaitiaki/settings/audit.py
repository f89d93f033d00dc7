"""What the gateway records of its own work: the audit stream and the
Prometheus metrics listener."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from kaitiaki.settings.base import Port, _Frozen

__all__ = ["AuditSettings", "MetricsSettings"]


class AuditSettings(_Frozen):
    """Where the one-event-per-request audit stream goes, how durably, and
    the keys of its hash chain and pseudonyms (see docs/configuration.md)."""

    sink: Literal["sqlite", "jsonl", "postgresql", "stdout"] = "sqlite"
    path: str = "var/audit.sqlite"
    database_url: str | None = None
    table: str = Field(default="audit_event", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    durability: Literal["strict", "batched"] = "strict"
    queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    flush_interval_seconds: float = Field(default=0.05, gt=0, le=10)
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
