"""The ``kaitiaki`` command: the only place that reads the environment,
configures logging and prints."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from kaitiaki.cli.audit import _audit_parsers, cmd_audit
from kaitiaki.cli.checkconfig import cmd_check_config
from kaitiaki.cli.demo import cmd_demo, cmd_issuer, cmd_refapi
from kaitiaki.cli.deps import (
    _LOCKS,
    _deps_parser,
    cmd_deps,
    cmd_deps_audit,
    cmd_deps_licences,
    cmd_deps_pip_audit,
    cmd_deps_verify,
)
from kaitiaki.cli.keys import _keys_parser, cmd_keys
from kaitiaki.cli.probe import _probe_parser, cmd_probe
from kaitiaki.cli.serve import cmd_serve, gateway_worker
from kaitiaki.cli.tokens import _dpop_parser, cmd_dpop_proof, cmd_token
from kaitiaki.errors import KaitiakiError

__all__ = [
    "cmd_audit",
    "cmd_check_config",
    "cmd_demo",
    "cmd_deps",
    "cmd_deps_audit",
    "cmd_deps_licences",
    "cmd_deps_pip_audit",
    "cmd_deps_verify",
    "cmd_dpop_proof",
    "cmd_issuer",
    "cmd_keys",
    "cmd_probe",
    "cmd_refapi",
    "cmd_serve",
    "cmd_token",
    # The worker factory uvicorn imports as "kaitiaki.cli:gateway_worker".
    "gateway_worker",
    "main",
]


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
    token.add_argument(
        "--resource", default=None, help="e.g. kaitiaki-admin for an admin token"
    )
    token.add_argument(
        "--dpop-key", default=None, help="bind the token to this key (DPoP)"
    )
    _dpop_parser(commands, common)
    audit = commands.add_parser("audit", help="read the audit trail", parents=[common])
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    tail = audit_commands.add_parser(
        "tail", help="print the latest events", parents=[common]
    )
    tail.add_argument("--limit", type=int, default=20)
    _audit_parsers(audit_commands, common)
    _deps_parser(commands, common)
    _probe_parser(commands, common)
    _keys_parser(commands, common)
    check = commands.add_parser(
        "check-config", help="report what in a settings file weakens the gateway"
    )
    check.add_argument("file")
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    check.add_argument(
        "--allow-examples",
        action="store_true",
        help="documentation placeholders do not fail (for the example file)",
    )
    return parser


_COMMANDS = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "issuer": cmd_issuer,
    "refapi": cmd_refapi,
    "token": cmd_token,
    "dpop-proof": cmd_dpop_proof,
    "audit": cmd_audit,
    "deps": cmd_deps,
    "probe": cmd_probe,
    "keys": cmd_keys,
    "check-config": cmd_check_config,
}


def _configure_logging(level: str) -> None:
    """Diagnostic logs to stderr, every record redacted (even at DEBUG); the
    audit stream never goes through logging."""
    from kaitiaki.audit.redact import RedactingFilter

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "lock") and args.lock is None:
        args.lock = list(_LOCKS)
    _configure_logging(os.environ.get("KAITIAKI_LOG_LEVEL", "INFO"))
    try:
        return _COMMANDS[args.command](args)
    except KaitiakiError as exc:
        print(f"kaitiaki: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
