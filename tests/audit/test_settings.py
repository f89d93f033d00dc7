"""Audit and metrics settings: dangerous values refused, by name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kaitiaki.settings import AuditSettings, MetricsSettings


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sink": "postgresql"}, "needs database_url"),
        ({"table": 'audit"; DROP TABLE x; --'}, "pattern"),
        ({"durability": "eventually"}, "strict"),
        ({"degraded_mode": "open"}, "serve_unaudited"),
        ({"flush_interval_seconds": 0}, "greater than 0"),
        ({"queue_size": 0}, "greater than or equal to 1"),
    ],
)
def test_audit_settings_refuse(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AuditSettings(**values)


def test_audit_key_files_default_beside_the_trail() -> None:
    settings = AuditSettings(path="/srv/k/audit.sqlite")
    hmac, checkpoint = settings.key_paths()
    assert str(hmac) == "/srv/k/keys/audit-hmac.key"
    assert str(checkpoint) == "/srv/k/keys/audit-checkpoint.jwk"
    assert settings.head_path("gw/1").name == "audit-head.gw_1.json"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5"])
def test_metrics_beyond_loopback_must_be_named(host: str) -> None:
    with pytest.raises(ValidationError, match="expose_beyond_loopback"):
        MetricsSettings(host=host)
    assert MetricsSettings(host=host, expose_beyond_loopback=True).host == host


def test_metrics_are_off_and_loopback_by_default() -> None:
    settings = MetricsSettings()
    assert (settings.enabled, settings.host) == (False, "127.0.0.1")
