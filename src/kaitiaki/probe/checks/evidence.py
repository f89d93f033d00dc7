"""Requirements 4 and 5 from operator-supplied evidence: the target's logs
and audit export (no canary the probe sent appears; every refusal left an
audit event) and its dependency list (no known vulnerability)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from kaitiaki.audit.commands import search_events
from kaitiaki.audit.sinks import Query
from kaitiaki.deps import audit_requirements, load_advisories, read_lock
from kaitiaki.deps.lockfile import LockedRequirement
from kaitiaki.errors import ConfigError, ProbeError
from kaitiaki.probe.checks.common import fail, not_applicable, passed
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import Target
from kaitiaki.settings import AuditSettings

__all__ = ["CHECKS"]

MAX_EVENTS = 200_000


def _events(target: Target) -> list[dict[str, Any]]:
    logging = target.profile.logging
    if logging.audit_sqlite:
        settings = AuditSettings(sink="sqlite", path=logging.audit_sqlite)
    elif logging.audit_jsonl:
        settings = AuditSettings(sink="jsonl", path=logging.audit_jsonl)
    else:
        return []
    try:
        return [dict(r) for r in search_events(settings, Query(), limit=MAX_EVENTS)]
    except ConfigError as exc:
        raise ProbeError(f"cannot read the audit export: {exc}") from exc


def _texts(target: Target) -> list[tuple[str, str]]:
    logging = target.profile.logging
    texts = []
    for name in logging.files:
        try:
            texts.append((name, Path(name).read_text("utf-8", "replace")))
        except OSError as exc:
            raise ProbeError(f"cannot read log file {name}: {exc.strerror}") from exc
    events = _events(target)
    if events:
        texts.append(("audit export", "\n".join(json.dumps(e) for e in events)))
    return texts


def _fragments(canary: str) -> list[str]:
    # A token may be logged in part: its signature alone identifies it.
    parts = [canary]
    if canary.count(".") == 2:
        parts.append(canary.rsplit(".", 1)[1])
    return [p for p in parts if len(p) >= 8]


def _no_canaries(target: Target) -> Outcome:
    texts = _texts(target)
    if not texts:
        return not_applicable("no log file or audit export could be read")
    canaries = sorted(target.canaries)
    for source, text in texts:
        for canary in canaries:
            if any(fragment in text for fragment in _fragments(canary)):
                kind = "a token" if canary.count(".") == 2 else "an input marker"
                return fail(f"{source} contains {kind} the probe sent")
    return passed(
        f"none of {len(canaries)} canaries (tokens, identifiers, markers) appear "
        f"in {len(texts)} log sources"
    )


def _refusals_audited(target: Target) -> Outcome:
    events = _events(target)
    if not events:
        return not_applicable("no audit export was supplied (logging.audit_*)")
    recorded = {(str(e.get("correlation_id")), e.get("status")) for e in events}
    missing = [
        (cid, status)
        for cid, status in target.refusals
        if (cid, status) not in recorded
    ]
    if missing:
        return fail(
            f"{len(missing)} of {len(target.refusals)} refusals left no audit event "
            f"(first: correlation id {missing[0][0]}, HTTP {missing[0][1]})"
        )
    return passed(f"all {len(target.refusals)} refusals have an audit event")


def _sbom_requirements(path: Path) -> list[LockedRequirement]:
    data = json.loads(path.read_text("utf-8"))
    found = []
    for component in data.get("components", []) if isinstance(data, dict) else []:
        purl = str(component.get("purl", ""))
        if purl.startswith("pkg:pypi/") and "@" in purl:
            name, _, version = purl[len("pkg:pypi/") :].partition("@")
            found.append(
                LockedRequirement(name.lower(), version.split("?")[0], frozenset())
            )
    return found


def _dependencies(target: Target) -> Outcome:
    deps = target.profile.dependencies
    if not deps.advisories:
        return not_applicable("no advisory snapshot named (dependencies.advisories)")
    try:
        requirements = [r for p in deps.requirements for r in read_lock(Path(p))]
        if deps.sbom:
            requirements += _sbom_requirements(Path(deps.sbom))
        advisories = load_advisories(Path(deps.advisories))
    except (OSError, ValueError, ConfigError) as exc:
        raise ProbeError(f"cannot read the dependency evidence: {exc}") from exc
    findings = audit_requirements(requirements, advisories, today=dt.date.today())
    if findings:
        first = findings[0]
        return fail(
            f"{len(findings)} known vulnerabilities, e.g. "
            f"{first.name}=={first.version} ({first.advisory})"
        )
    return passed(f"{len(requirements)} pinned dependencies, no known vulnerability")


CHECKS: tuple[Check, ...] = (
    Check(
        "log.no-canaries",
        "No token, identifier or input the probe sent appears in the logs",
        4,
        (
            "HNZAS_MUST_NOT_LOG_SENSITIVE_HEADERS",
            "HNZAS_MUST_NOT_LOG_PII_INFORMATION",
            "HNZAS_MUST_NOT_APPLY_FULL_CONTENT_LOGGING",
        ),
        Severity.HIGH,
        "Log metadata only: never the Authorization header, cookies, query "
        "strings, bodies or Request-Context.",
        _no_canaries,
        frozenset({"logs"}),
    ),
    Check(
        "log.refusals-audited",
        "Every refusal the probe caused left an audit event",
        4,
        (
            "HNZAS_MUST_LOG_ALL_API_INTERACTIONS",
            "HNZAS_MUST_LOG_AND_MONITOR_MALICIOUS_EVENTS",
        ),
        Severity.HIGH,
        "Write one audit event per request, refused or served, with its "
        "correlation id and status.",
        _refusals_audited,
        frozenset({"logs"}),
    ),
    Check(
        "deps.known-vulnerabilities",
        "No dependency has a known vulnerability",
        5,
        (),
        Severity.HIGH,
        "Upgrade the affected packages to a fixed version and re-run the audit in CI.",
        _dependencies,
        frozenset({"sbom"}),
    ),
)
