"""Small judgements shared by the checks."""

from __future__ import annotations

import re

from kaitiaki.probe.http import Sent
from kaitiaki.probe.model import Outcome, Verdict

__all__ = [
    "fail",
    "is_operation_outcome",
    "leaks_internals",
    "not_applicable",
    "passed",
    "status_outcome",
    "subject_of",
]

_INTERNALS = re.compile(
    r"Traceback \(most recent call last\)|\bat [\w.$]+\([\w.]+:\d+\)|"
    r"Exception in thread|RecursionError|File \"[^\"]+\", line \d+|"
    r"\bSQLSTATE\b|psycopg|sqlalchemy|stack trace",
    re.IGNORECASE,
)


def subject_of(title: str) -> str:
    """'An expired token is refused with 401' -> 'An expired token'."""
    return re.split(r" (?:is|are) refused", title, maxsplit=1)[0]


def passed(summary: str, *sents: Sent) -> Outcome:
    return Outcome(Verdict.PASS, summary, tuple(s.exchange for s in sents))


def fail(summary: str, *sents: Sent) -> Outcome:
    return Outcome(Verdict.FAIL, summary, tuple(s.exchange for s in sents))


def not_applicable(summary: str, *sents: Sent) -> Outcome:
    return Outcome(Verdict.NOT_APPLICABLE, summary, tuple(s.exchange for s in sents))


def is_operation_outcome(sent: Sent) -> bool:
    data = sent.json()
    return isinstance(data, dict) and data.get("resourceType") == "OperationOutcome"


def leaks_internals(sent: Sent) -> bool:
    return bool(_INTERNALS.search(sent.text()))


def status_outcome(
    sents: list[Sent], allowed: set[int], what: str, *, need_outcome: bool = False
) -> Outcome:
    """Pass when every response has an allowed status (and, if asked, an
    OperationOutcome body); fail naming the first that did not."""
    expected = "/".join(str(s) for s in sorted(allowed))
    for sent in sents:
        if sent.status not in allowed:
            return fail(
                f"{what}: answered HTTP {sent.status}, expected {expected}", sent
            )
        if need_outcome and not is_operation_outcome(sent):
            return fail(f"{what}: HTTP {sent.status} without an OperationOutcome", sent)
        if leaks_internals(sent):
            return fail(f"{what}: the error body shows internals", sent)
    return passed(f"{what}: refused with HTTP {expected}", *sents)
