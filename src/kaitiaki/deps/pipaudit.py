"""Summarise a ``pip-audit -f json`` report, telling "unavailable" apart.

pip-audit asks an online service about each package. When that service
cannot be reached, it skips every package and still exits 0; such a run
proves nothing and is reported as unavailable, never as a pass.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PipAuditSummary", "run_pip_audit", "summarise_pip_audit"]

logger = logging.getLogger("kaitiaki.deps.pipaudit")


@dataclass(frozen=True, slots=True)
class PipAuditSummary:
    audited: int
    skipped: int
    vulnerable: tuple[str, ...]

    @property
    def available(self) -> bool:
        return self.audited > 0

    def line(self) -> str:
        if not self.available and not self.skipped:
            return (
                "pip-audit: unavailable (no report: not installed, failed or timed out)"
            )
        if not self.available:
            return (
                f"pip-audit: unavailable ({self.skipped} packages could not be "
                f"audited: its online service did not answer)"
            )
        found = ", ".join(self.vulnerable) or "none"
        return (
            f"pip-audit: {self.audited} audited, {self.skipped} skipped, "
            f"known vulnerabilities: {found}"
        )


def summarise_pip_audit(text: str) -> PipAuditSummary:
    """Parse pip-audit's JSON; anything unparsable counts as unavailable."""
    try:
        report: Any = json.loads(text)
    except ValueError:
        return PipAuditSummary(0, 0, ())
    dependencies = report.get("dependencies") if isinstance(report, dict) else None
    if not isinstance(dependencies, list):
        return PipAuditSummary(0, 0, ())
    audited = skipped = 0
    vulnerable: list[str] = []
    for dependency in dependencies:
        if not isinstance(dependency, dict):
            continue
        if dependency.get("skip_reason"):
            skipped += 1
            continue
        audited += 1
        for vuln in dependency.get("vulns") or []:
            vulnerable.append(
                f"{dependency.get('name')}=={dependency.get('version')} "
                f"{vuln.get('id', '?')}"
            )
    return PipAuditSummary(audited, skipped, tuple(vulnerable))


def run_pip_audit(
    executable: Path, requirements: Sequence[str], timeout: float
) -> PipAuditSummary:
    """Run pip-audit over pinned ``requirements``; never waits past ``timeout``."""
    command = [
        str(executable),
        "--disable-pip",
        "--no-deps",
        "--progress-spinner",
        "off",
        "-f",
        "json",
        *[arg for path in requirements for arg in ("-r", path)],
    ]
    try:
        result = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.info("pip-audit did not finish: %s", type(exc).__name__)
        return PipAuditSummary(0, 0, ())
    return summarise_pip_audit(result.stdout)
