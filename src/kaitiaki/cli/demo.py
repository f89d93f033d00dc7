"""The development stack: ``kaitiaki demo`` runs the issuer, the reference
FHIR API and the gateway together; ``issuer`` and ``refapi`` run one each."""

from __future__ import annotations

import argparse
import os
from typing import Any

from kaitiaki.cli.config import _settings
from kaitiaki.errors import KaitiakiError
from kaitiaki.settings import Settings

__all__ = ["cmd_demo", "cmd_issuer", "cmd_refapi"]


def _serve_asgi(app: Any, host: str, port: int, tls: Settings | None = None) -> None:
    import uvicorn

    from kaitiaki.iam.listeners import server_config

    uvicorn.Server(server_config(app, host, port)).run()


def cmd_issuer(args: argparse.Namespace) -> int:
    from kaitiaki.issuer import create_app

    issuer = _settings(args).dev_issuer
    if issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    _serve_asgi(create_app(issuer), issuer.host, issuer.port)
    return 0


def cmd_refapi(args: argparse.Namespace) -> int:
    from kaitiaki.iam import SecretStore
    from kaitiaki.refapi import create_app

    refapi = _settings(args).refapi
    if refapi is None:
        raise KaitiakiError("the settings have no [refapi] section")
    app = create_app(refapi, secrets=SecretStore(os.environ))
    _serve_asgi(app, refapi.host, refapi.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kaitiaki.demo import DemoProcesses
    from kaitiaki.issuer import ensure_state

    settings = _settings(args)
    if settings.dev_issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    ensure_state(settings.dev_issuer)
    processes = DemoProcesses(settings, args.config)
    processes.start()
    base = settings.gateway.base_url
    print(
        f"\nKaitiaki demo is running (Ctrl-C stops it):\n"
        f"  gateway            {base}\n"
        f"  issuer             {settings.auth.issuer}\n"
        f"  reference FHIR API {settings.refapi.url if settings.refapi else '-'}\n\n"
        f"Try:\n"
        f"  TOKEN=$(.venv/bin/kaitiaki token)\n"
        f'  curl -s -H "Authorization: Bearer $TOKEN" '
        f"-H 'Accept: application/fhir+json' '{base}/Patient?_count=2'\n"
        f"  curl -s -i '{base}/Patient'      # no token: 401\n"
        f"  .venv/bin/kaitiaki audit tail    # one audit event per request\n"
        f"{_admin_hint(settings)}",
        flush=True,
    )
    return processes.wait()


def _admin_hint(settings: Settings) -> str:
    admin = settings.admin
    if not admin.enabled:
        return ""
    return (
        f"\nAdmin plane on http://{admin.host}:{admin.port}/admin (loopback):\n"
        f"  ADMIN=$(.venv/bin/kaitiaki token --client demo-admin "
        f"--resource {admin.audience})\n"
        f'  curl -s -H "Authorization: Bearer $ADMIN" '
        f"http://{admin.host}:{admin.port}/admin/config\n"
    )
