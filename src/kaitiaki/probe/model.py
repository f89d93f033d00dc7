"""What a probe run is made of: checks, their outcomes, evidence and verdicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaitiaki.probe.target import Target

__all__ = [
    "REQUIREMENTS",
    "Check",
    "CheckResult",
    "Exchange",
    "Outcome",
    "Report",
    "Requirement",
    "Severity",
    "Verdict",
    "row_verdict",
]


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    ERROR = "error"
    NOT_APPLICABLE = "not_applicable"
    SKIPPED = "skipped"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One of the eight rows of the standard's cloud-API security table."""

    row: int
    catalogue_id: str
    title: str
    text: str


REQUIREMENTS: dict[int, Requirement] = {
    r.row: r
    for r in (
        Requirement(
            1,
            "CLOUD-01",
            "Authentication and authorisation",
            "OAuth 2.0 / OpenID Connect and an authorisation decision on every "
            "request.",
        ),
        Requirement(
            2,
            "CLOUD-02",
            "Message validation",
            "Every part of every incoming message is validated.",
        ),
        Requirement(
            3,
            "CLOUD-03",
            "Rate limits and quotas",
            "Every endpoint that can consume significant resources is rate-limited.",
        ),
        Requirement(
            4,
            "CLOUD-04",
            "Logging of security operations",
            "API activity is logged, in particular failed authentication, "
            "authorisation and validation, without secrets or personal data.",
        ),
        Requirement(
            5,
            "CLOUD-05",
            "Trusted dependencies",
            "Third-party dependencies are checked for known vulnerabilities.",
        ),
        Requirement(
            6,
            "CLOUD-06",
            "Zero trust",
            "No session-based authentication; every request carries its own "
            "credential and nothing is trusted for its network location.",
        ),
        Requirement(
            7,
            "CLOUD-07",
            "Traffic filtering and transport",
            "Traffic from public networks is filtered by a WAF or API gateway and "
            "carried over TLS.",
        ),
        Requirement(
            8,
            "CLOUD-08",
            "Identity and access management for keys",
            "Credentials, keys and configuration are protected by dedicated "
            "policies; no private key material is exposed.",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its response, already redacted for the report."""

    method: str
    url: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: str | None
    status: int | None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    summary: str
    evidence: tuple[Exchange, ...] = ()


#: Capabilities a check needs from the profile before it may run.
NEEDS = frozenset({"writes", "destructive", "disruptive", "logs", "sbom"})


@dataclass(frozen=True, slots=True)
class Check:
    """A black-box test of one rule, tagged with the standard's ids."""

    id: str
    title: str
    row: int
    hnzas: tuple[str, ...]
    severity: Severity
    remedy: str
    run: Callable[[Target], Outcome]
    needs: frozenset[str] = field(default_factory=frozenset)
    #: What a pass does not show, stated next to the verdict.
    limitation: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    outcome: Outcome
    seconds: float

    @property
    def verdict(self) -> Verdict:
        return self.outcome.verdict


@dataclass(frozen=True, slots=True)
class Report:
    base_url: str
    profile: str
    started: str
    finished: str
    results: tuple[CheckResult, ...]
    requests_sent: int
    probe_version: str

    def by_row(self) -> dict[int, list[CheckResult]]:
        rows: dict[int, list[CheckResult]] = {row: [] for row in REQUIREMENTS}
        for result in self.results:
            rows[result.check.row].append(result)
        return rows

    def counts(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts


def row_verdict(results: list[CheckResult]) -> Verdict:
    """A requirement fails with any failed check; passes only with a pass and no
    failure or error; otherwise it is not applicable or was not tested."""
    verdicts = {result.verdict for result in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.ERROR in verdicts:
        return Verdict.ERROR
    if Verdict.PASS in verdicts:
        return Verdict.PASS
    if Verdict.NOT_APPLICABLE in verdicts:
        return Verdict.NOT_APPLICABLE
    return Verdict.SKIPPED
