"""Requirement 2, validation: bad input of every kind is a 4xx with an
OperationOutcome, echoes nothing of the input and shows no internals."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from kaitiaki.nz.identifiers import nhi_check_character
from kaitiaki.probe.checks.common import fail, status_outcome, subject_of
from kaitiaki.probe.http import Sent
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import FHIR_JSON, Target

__all__ = ["CHECKS"]

VALIDATE = ("HNZAS_MUST_VALIDATE_REQUESTS", "HNZAS_SHOULD_VALIDATE_INPUT")
JSON_IDS = (*VALIDATE, "HNZAS_SHOULD_VALIDATE_JSON_CONTENT")
QUIET = ("HNZAS_SHOULD_NOT_REVEAL_SYSTEM_INFO",)
NHI_SYSTEM = "https://standards.digital.health.nz/ns/nhi-id"
FIX = (
    "Validate every part of the message before it reaches the API and refuse "
    "with the right 4xx and a FHIR OperationOutcome whose text names the rule, "
    "never the input; never answer 500 or show a stack trace."
)


@dataclass(frozen=True, slots=True)
class Probe:
    """One bad request: how to send it, what it must be answered with."""

    method: str
    path: Callable[[Target, str], str]
    body: Callable[[Target, str], bytes | None]
    headers: dict[str, str]
    allowed: frozenset[int]
    role: str = "writer"


def marker() -> str:
    return "kpecho" + secrets.token_hex(4)


def _invalid_nhi() -> str:
    base = "ZZZ001"
    good = nhi_check_character(base) or "0"
    bad = next(d for d in "0123456789" if d != good)
    return base + bad


def _nhi(target: Target) -> str:
    nhi = _invalid_nhi()
    target.canaries.add(nhi)
    return nhi


def _judge(probe: Probe, target: Target, echo: str, what: str) -> Outcome:
    target.canaries.add(echo)
    headers = dict(probe.headers)
    body = probe.body(target, echo)
    if body is not None:
        headers.setdefault("Content-Type", FHIR_JSON)
    sent = target.request(
        probe.method,
        probe.path(target, echo),
        role=probe.role,
        headers=headers,
        body=body,
    )
    outcome = status_outcome([sent], set(probe.allowed), what, need_outcome=True)
    if outcome.verdict.value != "pass":
        return outcome
    return _echo_outcome(sent, echo, outcome)


def _echo_outcome(sent: Sent, echo: str, outcome: Outcome) -> Outcome:
    if echo in sent.text():
        return fail("the error answer echoes the input back", sent)
    return outcome


def _check(
    check_id: str,
    title: str,
    probe: Probe,
    *,
    hnzas: tuple[str, ...] = JSON_IDS,
    needs: frozenset[str] = frozenset({"writes"}),
    severity: Severity = Severity.HIGH,
) -> Check:
    def run(target: Target) -> Outcome:
        return _judge(probe, target, marker(), subject_of(title))

    return Check(check_id, title, 2, (*hnzas, *QUIET), severity, FIX, run, needs)


def _type(target: Target, echo: str) -> str:
    return target.read_type


def _patient(kind: str, echo: str, extra: str = "") -> bytes:
    return (
        f'{{"resourceType":"{kind}"{extra},"name":[{{"family":"{echo}"}}]}}'
    ).encode()


CHECKS: tuple[Check, ...] = (
    _check(
        "validate.malformed-json",
        "Malformed JSON is refused with 400",
        Probe(
            "POST",
            _type,
            lambda t, e: _patient(t.read_type, e)[:-1],
            {},
            frozenset({400}),
        ),
    ),
    _check(
        "validate.duplicate-keys",
        "JSON with duplicate keys is refused with 400",
        Probe(
            "POST",
            _type,
            lambda t, e: _patient(t.read_type, e, ',"gender":"male","gender":"female"'),
            {},
            frozenset({400}),
        ),
    ),
    _check(
        "validate.deep-nesting",
        "Deeply nested JSON is refused (400 or 413), never a 500",
        Probe(
            "POST",
            _type,
            lambda t, e: (
                f'{{"resourceType":"{t.read_type}","x":"{e}","extension":'
                + "[" * 5000
                + "]" * 5000
                + "}"
            ).encode(),
            {},
            frozenset({400, 413}),
        ),
    ),
    _check(
        "validate.wrong-resource-type",
        "A body whose resourceType does not match the URL is refused",
        Probe(
            "POST",
            _type,
            lambda t, e: _patient(
                t.other_type if t.other_type != t.read_type else "X", e
            ),
            {},
            frozenset({400, 422}),
        ),
    ),
    _check(
        "validate.invalid-nhi",
        "A search with an NHI failing its check character is refused",
        Probe(
            "GET",
            lambda t, e: (
                f"{t.read_type}?identifier={NHI_SYSTEM}|{_invalid_nhi()}&_count=1"
            ),
            lambda t, e: None,
            {},
            frozenset({400, 422}),
            role="reader",
        ),
        needs=frozenset(),
    ),
    _check(
        "validate.unsupported-accept",
        "An unsupported Accept type is refused with 406",
        Probe(
            "GET",
            lambda t, e: t.read_path,
            lambda t, e: None,
            {"Accept": "application/x-kaitiaki-probe"},
            frozenset({406}),
            role="reader",
        ),
        hnzas=(*VALIDATE, "HNZAS_MUST_RETURN_406_IF_UNSUPPORTED"),
        needs=frozenset(),
        severity=Severity.MEDIUM,
    ),
    _check(
        "validate.unsupported-content-type",
        "An unsupported Content-Type is refused with 415",
        Probe(
            "POST",
            _type,
            lambda t, e: e.encode(),
            {"Content-Type": "text/plain"},
            frozenset({415}),
        ),
        hnzas=(*VALIDATE, "HNZAS_SHOULD_VALIDATE_INCOMING_CONTENT_TYPE"),
        severity=Severity.MEDIUM,
    ),
    _check(
        "validate.oversized-body",
        "An oversized body (2 MiB) is refused with 413",
        Probe(
            "POST",
            lambda t, e: f"{t.read_type}/_search",
            lambda t, e: b"name=" + e.encode() + b"x" * (2 * 1024 * 1024),
            {"Content-Type": "application/x-www-form-urlencoded"},
            frozenset({413}),
            role="reader",
        ),
        needs=frozenset(),
    ),
    _check(
        "validate.unknown-search-parameter",
        "An unknown search parameter is refused with 400",
        Probe(
            "GET",
            lambda t, e: f"{t.read_type}?kaitiaki-probe-unknown={e}",
            lambda t, e: None,
            {},
            frozenset({400}),
            role="reader",
        ),
        needs=frozenset(),
        severity=Severity.MEDIUM,
    ),
    _check(
        "validate.invalid-request-context",
        "An invalid Request-Context header is refused with 400",
        Probe(
            "GET",
            lambda t, e: t.read_path,
            lambda t, e: None,
            {"Request-Context": "kpecho-not-base64!!{"},
            frozenset({400}),
            role="reader",
        ),
        needs=frozenset(),
    ),
)
