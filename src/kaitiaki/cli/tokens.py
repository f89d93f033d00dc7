"""What a demo client sends: ``kaitiaki token`` gets an access token from the
development issuer, ``dpop-proof`` signs a DPoP proof for one request."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kaitiaki.cli.config import _settings
from kaitiaki.errors import KaitiakiError

__all__ = ["cmd_dpop_proof", "cmd_token"]


def cmd_token(args: argparse.Namespace) -> int:
    from kaitiaki.issuer.client import fetch_token_sync

    settings = _settings(args)
    issuer = settings.dev_issuer
    if issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    client = next((c for c in issuer.clients if c.client_id == args.client), None)
    if client is None:
        raise KaitiakiError(f"no demo client named {args.client!r} in [dev_issuer]")
    dpop_key = _dpop_key(Path(args.dpop_key)) if args.dpop_key else None
    response = fetch_token_sync(
        settings.auth.issuer,
        client.client_id,
        Path(client.key_path),
        scope=args.scope,
        resource=args.resource,
        dpop_key=dpop_key,
    )
    print(response.access_token)
    return 0


def _dpop_key(path: Path) -> Any:
    """The client's DPoP key: loaded, or created (owner-only) on first use."""
    from kaitiaki.issuer.keys import (
        generate_signing_key,
        load_private_key,
        write_private_key,
    )

    if not path.exists():
        write_private_key(path, generate_signing_key())
    return load_private_key(path)


def cmd_dpop_proof(args: argparse.Namespace) -> int:
    import secrets
    import time

    from kaitiaki.issuer.client import build_dpop_proof

    stdin = args.token == "-"  # noqa: S105 (the stdin marker, not a secret)
    token = sys.stdin.readline().strip() if stdin else args.token
    proof = build_dpop_proof(
        _dpop_key(Path(args.key)),
        args.method.upper(),
        args.url,
        token or None,
        now=int(time.time()),
        jti=secrets.token_urlsafe(24),
    )
    print(proof)
    return 0


def _dpop_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    proof = commands.add_parser(
        "dpop-proof", help="print a DPoP proof for one request", parents=[common]
    )
    proof.add_argument("--key", required=True, help="private JWK file (created)")
    proof.add_argument("--method", default="GET")
    proof.add_argument("--url", required=True, help="the request URL (htu)")
    proof.add_argument("--token", default="-", help="access token, '-' for stdin")
