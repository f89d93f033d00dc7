"""The ``kaitiaki`` command: the only place that reads the environment,
configures logging and prints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kaitiaki.errors import KaitiakiError
from kaitiaki.settings import Settings, load_settings

logger = logging.getLogger("kaitiaki.cli")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _serve_asgi(app: Any, host: str, port: int, tls: Settings | None = None) -> None:
    import uvicorn

    from kaitiaki.gateway.tls import harden, listener_config

    options = listener_config(tls.gateway) if tls is not None else {}
    # No access log: a request line can carry an NHI in its query string.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        **options,
    )
    if options and tls is not None:
        config.load()
        harden(config.ssl, tls.gateway)
    uvicorn.Server(config).run()


def cmd_serve(args: argparse.Namespace) -> int:
    from kaitiaki.gateway.app import Gateway

    settings = _settings(args)
    gateway = Gateway(settings)
    _serve_asgi(gateway, settings.gateway.host, settings.gateway.port, settings)
    return 0


def cmd_issuer(args: argparse.Namespace) -> int:
    from kaitiaki.issuer import create_app

    issuer = _settings(args).dev_issuer
    if issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    _serve_asgi(create_app(issuer), issuer.host, issuer.port)
    return 0


def cmd_refapi(args: argparse.Namespace) -> int:
    from kaitiaki.refapi import create_app

    refapi = _settings(args).refapi
    if refapi is None:
        raise KaitiakiError("the settings have no [refapi] section")
    _serve_asgi(create_app(refapi), refapi.host, refapi.port)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from kaitiaki.issuer.client import fetch_token_sync

    settings = _settings(args)
    issuer = settings.dev_issuer
    if issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    client = next((c for c in issuer.clients if c.client_id == args.client), None)
    if client is None:
        raise KaitiakiError(f"no demo client named {args.client!r} in [dev_issuer]")
    response = fetch_token_sync(
        settings.auth.issuer, client.client_id, Path(client.key_path), scope=args.scope
    )
    print(response.access_token)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from kaitiaki.audit import read_events

    for record in read_events(_settings(args).audit, limit=args.limit):
        print(json.dumps(record, separators=(",", ":")))
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
        f"  .venv/bin/kaitiaki audit tail    # one audit event per request\n",
        flush=True,
    )
    return processes.wait()


def cmd_deps_verify(args: argparse.Namespace) -> int:
    from kaitiaki.deps import read_lock, verify_environment

    locked = [req for path in args.lock for req in read_lock(Path(path))]
    problems = verify_environment(locked)
    for problem in problems:
        print(f"MISMATCH {problem}")
    print(f"deps verify: {len(locked)} locked, {len(problems)} discrepancies")
    return 1 if problems else 0


def cmd_deps_audit(args: argparse.Namespace) -> int:
    import datetime as dt

    from kaitiaki.deps import audit_requirements, load_advisories, read_lock
    from kaitiaki.deps.advisories import read_ignores

    advisories = load_advisories(Path(args.advisories))
    ignores = read_ignores(Path(args.ignore)) if Path(args.ignore).exists() else []
    requirements = [req for path in args.requirements for req in read_lock(Path(path))]
    findings = audit_requirements(
        requirements, advisories, ignores=ignores, today=dt.date.today()
    )
    open_findings = [f for f in findings if f.ignored_because is None]
    for finding in findings:
        state = (
            f"IGNORED ({finding.ignored_because})"
            if finding.ignored_because
            else "VULNERABLE"
        )
        fixed = ", ".join(finding.fixed) or "no fixed version"
        print(
            f"{state} {finding.name}=={finding.version} {finding.advisory} "
            f"{' '.join(finding.aliases)} fixed in: {fixed}"
        )
    print(
        f"deps audit: {len(requirements)} pinned requirements checked against the "
        f"advisory snapshot of {advisories.snapshot or 'unknown date'}: "
        f"{len(open_findings)} known vulnerabilities, "
        f"{len(findings) - len(open_findings)} ignored"
    )
    return 1 if open_findings else 0


def cmd_deps(args: argparse.Namespace) -> int:
    if args.deps_command == "verify":
        return cmd_deps_verify(args)
    return cmd_deps_audit(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kaitiaki", description=__doc__)
    parser.add_argument("--config", help="settings file (default: the demo settings)")
    # --config may also follow the subcommand: `kaitiaki serve --config x.toml`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "start issuer, reference API and gateway"),
        ("serve", "run the gateway"),
        ("issuer", "run the development authorisation server"),
        ("refapi", "run the reference FHIR API"),
    ):
        commands.add_parser(name, help=text, parents=[common])
    token = commands.add_parser(
        "token", help="get an access token from the issuer", parents=[common]
    )
    token.add_argument("--client", default="demo-system")
    token.add_argument("--scope", default=None)
    audit = commands.add_parser("audit", help="read the audit trail", parents=[common])
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    tail = audit_commands.add_parser(
        "tail", help="print the latest events", parents=[common]
    )
    tail.add_argument("--limit", type=int, default=20)
    _deps_parser(commands, common)
    return parser


def _deps_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    deps = commands.add_parser("deps", help="check dependencies", parents=[common])
    deps_commands = deps.add_subparsers(dest="deps_command", required=True)
    verify = deps_commands.add_parser(
        "verify", help="installed files against the lock files"
    )
    verify.add_argument(
        "--lock",
        action="append",
        default=None,
        help="lock file (default: requirements.lock and requirements-dev.lock)",
    )
    audit = deps_commands.add_parser(
        "audit", help="pinned requirements against an OSV advisory snapshot"
    )
    audit.add_argument("--advisories", default="../shared/data/pypa-advisories")
    audit.add_argument(
        "--requirements",
        action="append",
        default=None,
        help="pinned requirements file (default: the lock files); repeatable",
    )
    audit.add_argument("--ignore", default="deps-ignore.toml")


_LOCKS = ["requirements.lock", "requirements-dev.lock"]


_COMMANDS = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "issuer": cmd_issuer,
    "refapi": cmd_refapi,
    "token": cmd_token,
    "audit": cmd_audit,
    "deps": cmd_deps,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("lock", "requirements"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, list(_LOCKS))
    logging.basicConfig(
        level=os.environ.get("KAITIAKI_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return _COMMANDS[args.command](args)
    except KaitiakiError as exc:
        print(f"kaitiaki: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
