"""What the ``kaitiaki audit`` commands do, as functions returning data
(the CLI prints it)."""

from __future__ import annotations

import json
from pathlib import Path

from kaitiaki.audit.chain import ChainReport, check_head, verify_chains
from kaitiaki.audit.events import Record
from kaitiaki.audit.fhir import to_bundle
from kaitiaki.audit.keys import load_pseudonymiser, load_verification_keys
from kaitiaki.audit.sinks import Query, open_sink
from kaitiaki.errors import ConfigError
from kaitiaki.settings import AuditSettings

__all__ = ["export_lines", "search_events", "verify_report", "verify_sink"]


def search_events(settings: AuditSettings, query: Query, *, limit: int) -> list[Record]:
    """The latest ``limit`` records matching ``query``, oldest first."""
    sink = open_sink(settings, readonly=True)
    try:
        return sink.search(query, limit)
    finally:
        sink.close()


def patient_hash(settings: AuditSettings, identifier: str) -> str:
    """The hash an identifier is recorded as (needs the HMAC key)."""
    return load_pseudonymiser(settings).patient(identifier)


def verify_sink(settings: AuditSettings, public_keys: list[Path]) -> list[ChainReport]:
    keys = load_verification_keys(settings, public_keys)
    sink = open_sink(settings, readonly=True)
    try:
        rotated = settings.sink == "jsonl" and settings.rotate_keep > 0
        reports = verify_chains(sink.scan(), keys, allow_later_start=rotated)
    finally:
        sink.close()
    for report in reports:
        head = _head_file(settings.head_path(report.instance))
        if head is not None:
            check_head(report, *head)
    return reports


def _head_file(path: Path) -> tuple[int, str] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        return int(data["seq"]), str(data["hash"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable audit head file") from exc


def verify_report(reports: list[ChainReport]) -> list[str]:
    """One line per instance chain, then a summary line."""
    lines = []
    for report in reports:
        state = "OK" if report.ok else f"BAD at {report.position}: {report.problem}"
        lines.append(
            f"{report.instance}: {state}; {report.events} records verified "
            f"(seq {report.first_seq or 0}..{report.last_seq}), "
            f"{report.checkpoints} signed checkpoints, "
            f"{report.unsigned_tail} records after the last checkpoint"
            + (
                f", {report.unchained} older unchained records"
                if report.unchained
                else ""
            )
        )
    bad = sum(1 for report in reports if not report.ok)
    lines.append(f"audit verify: {len(reports)} chains, {bad} with problems")
    return lines


def export_lines(records: list[Record], format_name: str) -> list[str]:
    if format_name == "fhir":
        return [json.dumps(to_bundle(records), indent=2)]
    return [json.dumps(record, separators=(",", ":")) for record in records]
