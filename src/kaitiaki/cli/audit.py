"""``kaitiaki audit``: search and export the audit trail, verify its hash
chains and checkpoints, rotate its checkpoint key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kaitiaki.cli.config import _settings

__all__ = ["cmd_audit"]


def _audit_query(args: argparse.Namespace) -> Any:
    from kaitiaki.audit import Query
    from kaitiaki.audit.commands import patient_hash

    patient = getattr(args, "patient_hash", None)
    if getattr(args, "patient", None):
        patient = patient_hash(_settings(args).audit, args.patient)
    return Query(
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        client_id=getattr(args, "client", None),
        outcome=getattr(args, "outcome", None),
        correlation_id=getattr(args, "correlation_id", None),
        patient=patient,
        event_type=getattr(args, "type", None),
    )


def cmd_audit(args: argparse.Namespace) -> int:
    from kaitiaki.audit.commands import (
        export_lines,
        search_events,
        verify_report,
        verify_sink,
    )

    settings = _settings(args).audit
    if args.audit_command == "rotate-key":
        from kaitiaki.audit.keys import rotate_checkpoint_key

        key_id = rotate_checkpoint_key(settings)
        print(f"new checkpoint key {key_id}; the gateway signs with it after a restart")
        return 0
    if args.audit_command == "verify":
        reports = verify_sink(settings, [Path(p) for p in args.public_key])
        print("\n".join(verify_report(reports)))
        return 0 if all(report.ok for report in reports) else 1
    records = search_events(settings, _audit_query(args), limit=args.limit)
    fmt = getattr(args, "format", "jsonl")
    for line in export_lines(records, fmt):
        print(line)
    return 0


def _audit_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    verify = commands.add_parser(
        "verify", help="check the hash chains and signed checkpoints", parents=[common]
    )
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="another instance's checkpoint public JWK file; repeatable",
    )
    commands.add_parser(
        "rotate-key", help="retire the checkpoint signing key", parents=[common]
    )
    search = commands.add_parser("search", help="find events", parents=[common])
    export = commands.add_parser(
        "export", help="events as FHIR AuditEvents or JSON Lines", parents=[common]
    )
    export.add_argument("--format", choices=("fhir", "jsonl"), default="jsonl")
    for parser in (search, export):
        parser.add_argument("--since", help="ISO time, inclusive (UTC)")
        parser.add_argument("--until", help="ISO time, exclusive (UTC)")
        parser.add_argument("--client", help="client id")
        parser.add_argument("--outcome", choices=("served", "refused", "failed"))
        parser.add_argument("--correlation-id")
        parser.add_argument("--patient", help="a patient identifier (hashed here)")
        parser.add_argument("--patient-hash", help="a recorded patient hash")
        parser.add_argument("--type", choices=("request", "security", "checkpoint"))
        parser.add_argument("--limit", type=int, default=1000)
