"""``kaitiaki check-config``: what in a settings file weakens the gateway,
with an exit status a pipeline can act on."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["cmd_check_config"]


def cmd_check_config(args: argparse.Namespace) -> int:
    from kaitiaki.iam.checkconfig import check_config, exit_status

    findings = check_config(Path(args.file))
    for finding in findings:
        print(finding)
    status = exit_status(
        findings, strict=args.strict, allow_examples=args.allow_examples
    )
    counts = {
        level: sum(f.level == level for f in findings)
        for level in ("error", "warning", "example")
    }
    print(
        f"check-config {args.file}: {counts['error']} errors, "
        f"{counts['warning']} warnings, {counts['example']} example values"
    )
    return status
