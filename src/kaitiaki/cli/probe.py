"""``kaitiaki probe``: test a deployed API against the cloud API security
standard and write the reports."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from kaitiaki.cli.config import _settings
from kaitiaki.errors import KaitiakiError

__all__ = ["cmd_probe"]


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kaitiaki.probe import (
        Severity,
        demo_profile,
        exit_status,
        load_profile,
        run_probe,
        select_checks,
        write_reports,
    )
    from kaitiaki.probe.terminal import live_progress, print_summary

    if args.demo == bool(args.profile):
        raise KaitiakiError("give exactly one of --profile PROFILE.toml or --demo")
    profile = demo_profile(_settings(args)) if args.demo else load_profile(args.profile)
    # httpx logs every request line at INFO, and a probe URL may carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    console = Console(stderr=True)
    checks = select_checks(args.only or ())
    with live_progress(console, len(checks)) as progress:
        report = run_probe(
            args.base_url, profile, only=args.only or (), progress=progress
        )
    print_summary(console, report)
    if args.output:
        for path in write_reports(report, Path(args.output)):
            console.print(f"wrote {path}", highlight=False)
    return exit_status(report, Severity(args.fail_on))


def _probe_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    probe = commands.add_parser(
        "probe",
        help="test a deployed API against the cloud API security standard",
        parents=[common],
    )
    probe.add_argument("base_url", help="the FHIR base URL, e.g. https://api/fhir")
    probe.add_argument("--profile", help="probe profile (TOML)")
    probe.add_argument(
        "--demo", action="store_true", help="probe the local demo (make run)"
    )
    probe.add_argument("--output", help="folder for the JSON, JUnit, SARIF, HTML")
    probe.add_argument(
        "--fail-on",
        default="high",
        choices=["low", "medium", "high", "critical"],
        help="exit 1 when a check of this severity or above fails (default high)",
    )
    probe.add_argument(
        "--only", action="append", help="run only checks whose id starts so"
    )
