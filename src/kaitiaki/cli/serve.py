"""``kaitiaki serve``: the gateway on one listener or on worker processes,
with the admin plane beside it when enabled."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from kaitiaki.cli.config import _settings
from kaitiaki.errors import KaitiakiError
from kaitiaki.settings import Settings, load_settings

__all__ = ["cmd_serve", "gateway_worker"]

logger = logging.getLogger("kaitiaki.cli")


def _checked_settings(args: argparse.Namespace) -> Settings:
    from kaitiaki.iam.startup import refuse_unsafe_start, secret_store

    settings = _settings(args)
    refuse_unsafe_start(settings, secret_store(settings, os.environ))
    return settings


_WORKER_CONFIG = "KAITIAKI_WORKER_CONFIG"


def gateway_worker() -> Any:
    """The app factory each worker process calls when ``gateway.workers > 1``.

    Every worker gets its own instance name, so that each keeps its own audit
    chain and its events say which process served them.
    """
    from kaitiaki.gateway.app import Gateway

    path = os.environ.get(_WORKER_CONFIG) or None
    settings = load_settings(path)
    gateway = settings.gateway.model_copy(
        update={"instance": f"{settings.gateway.instance}-{os.getpid()}"}
    )
    return Gateway(
        settings.model_copy(update={"gateway": gateway}),
        environ=os.environ,
        freeze_heap=True,
    )


def _serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """Several gateway processes, each on its own socket where the kernel
    can balance them (``kaitiaki.gateway.workers``)."""
    from kaitiaki.gateway.workers import BalancedWorkers, worker_sockets
    from kaitiaki.iam.listeners import gateway_head_bytes, server_config

    if settings.gateway.tls_cert is not None:
        # Each worker would build its own TLS context, without the protocol
        # floor that harden() sets on a single listener's.
        raise KaitiakiError(
            "gateway.workers > 1 cannot terminate TLS itself; terminate TLS in "
            "front of the workers, or run one worker per instance"
        )
    if settings.admin.enabled:
        # The admin plane shares the gateway's event loop (its kill switch,
        # caches and sink), which one worker process of many cannot offer.
        raise KaitiakiError(
            "gateway.workers > 1 cannot run with [admin] enabled = true; run the "
            "admin plane on a single-worker gateway instance"
        )
    if settings.metrics.enabled:
        # Each worker would open its own /metrics listener on the one port
        # (the second fails to start), and each counts only its own requests.
        raise KaitiakiError(
            "gateway.workers > 1 cannot run with [metrics] enabled = true; run "
            "one worker per instance and scrape each instance"
        )
    os.environ[_WORKER_CONFIG] = str(Path(args.config).resolve()) if args.config else ""
    config = server_config(
        "kaitiaki.cli:gateway_worker",
        settings.gateway.host,
        settings.gateway.port,
        factory=True,
        workers=settings.gateway.workers,
        max_head_bytes=gateway_head_bytes(settings.gateway),
        head_timeout_seconds=settings.gateway.head_timeout_seconds,
    )
    try:
        sockets = worker_sockets(config)
    except OSError as exc:
        raise KaitiakiError(
            f"gateway.port: cannot listen on {config.host}:{config.port}: "
            f"{exc.strerror}"
        ) from exc
    BalancedWorkers(config, sockets).run()
    return 0


def _gateway_config(app: Any, settings: Settings) -> Any:
    """The gateway listener's server settings: TLS 1.3 (or 1.2 by name) and
    optional client certificates when ``gateway.tls_cert`` is set."""
    from kaitiaki.gateway.tls import harden, listener_config
    from kaitiaki.iam.listeners import gateway_head_bytes, server_config

    options = listener_config(settings.gateway)
    config = server_config(
        app,
        settings.gateway.host,
        settings.gateway.port,
        max_head_bytes=gateway_head_bytes(settings.gateway),
        head_timeout_seconds=settings.gateway.head_timeout_seconds,
        **options,
    )
    if options:
        config.load()
        harden(config.ssl, settings.gateway)
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    from kaitiaki.gateway.app import Gateway

    settings = _checked_settings(args)
    if settings.gateway.workers > 1:
        return _serve_workers(args, settings)
    gateway = Gateway(settings, environ=os.environ, freeze_heap=True)
    _reload_limits_on_sighup(gateway, args)
    config = _gateway_config(gateway, settings)
    if not settings.admin.enabled:
        import uvicorn

        uvicorn.Server(config).run()
        return 0

    from kaitiaki.iam.admin import create_admin_app
    from kaitiaki.iam.listeners import serve_together
    from kaitiaki.iam.policy import load_policies

    policies = load_policies(settings.admin.policy_file)
    admin = create_admin_app(gateway, policies, lambda: _checked_settings(args))
    serve_together(config, admin, settings.admin)
    return 0


def _reload_limits_on_sighup(gateway: Any, args: argparse.Namespace) -> None:
    """SIGHUP rereads the settings file and applies its ``[limits]``."""
    import signal

    def reload(signum: int, frame: object) -> None:
        if gateway.limits is None:
            return
        try:
            gateway.limits.reload(_settings(args).limits)
        except KaitiakiError as exc:
            logger.error("limits not reloaded: %s", exc)

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reload)
