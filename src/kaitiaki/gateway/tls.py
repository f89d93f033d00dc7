"""Listener TLS for ``kaitiaki serve``: TLS 1.3 unless 1.2 is named, and
optional client-certificate verification (mTLS) against a CA file.

:func:`listener_config` gives the uvicorn options; :func:`harden` then sets
the minimum protocol version on the context uvicorn built, because uvicorn
has no option for it.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from kaitiaki.errors import ConfigError
from kaitiaki.settings import GatewaySettings

__all__ = ["harden", "listener_config"]

logger = logging.getLogger("kaitiaki.gateway")


def listener_config(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for the listener (empty: plain HTTP)."""
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise ConfigError(
                "gateway.tls_client_ca needs gateway.tls_cert and tls_key"
            )
        return {}
    if settings.tls_cert is None or settings.tls_key is None:
        raise ConfigError("gateway.tls_cert and gateway.tls_key must be set together")
    options: dict[str, Any] = {
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
        "ssl_version": ssl.PROTOCOL_TLS_SERVER,
    }
    if settings.tls_client_ca is not None:
        options["ssl_ca_certs"] = settings.tls_client_ca
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    if settings.allow_tls12:
        logger.warning("gateway.allow_tls12 is on: TLS 1.2 clients are accepted")
    return options


def harden(context: ssl.SSLContext | None, settings: GatewaySettings) -> None:
    """Set the minimum version (1.3, or 1.2 with ``allow_tls12``)."""
    if context is None:
        return
    minimum = ssl.TLSVersion.TLSv1_2 if settings.allow_tls12 else ssl.TLSVersion.TLSv1_3
    context.minimum_version = minimum
    context.options |= ssl.OP_NO_COMPRESSION
