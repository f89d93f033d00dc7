"""Scope and compartment decisions for every interaction type (pure core)."""

from __future__ import annotations

import pytest

from kaitiaki.controls.authorise import Decision, authorise
from kaitiaki.errors import Forbidden, InsufficientScope, Refusal
from kaitiaki.fhir.interactions import match_interaction
from kaitiaki.fhir.scopes import parse_scopes
from kaitiaki.request import CanonicalRequest, parse_query
from kaitiaki.settings import AuthoriseSettings

SETTINGS = AuthoriseSettings(
    operations={
        "participate": "https://fhir.example.nz/OperationDefinition/participate"
    }
)
ALLOW, DENY = "allow", "deny"


def decide(
    scope: str, method: str, target: str, patient: str | None = None
) -> Decision:
    path, _, query = target.partition("?")
    request = CanonicalRequest(
        method=method,
        path="/fhir" + path,
        query=parse_query(query.encode(), max_bytes=4096),
        headers={},
        client_address="127.0.0.1",
        correlation_id="c",
    )
    interaction = match_interaction(method, path)
    return authorise(
        parse_scopes(scope, prefixes=("https://api.hip.digital.health.nz/fhir",)),
        interaction,
        request,
        SETTINGS,
        patient=patient,
    )


@pytest.mark.parametrize(
    ("scope", "method", "target", "expected"),
    [
        # read / vread / history-instance need r
        ("system/Patient.r", "GET", "/Patient/p1", ALLOW),
        ("system/Patient.s", "GET", "/Patient/p1", DENY),
        ("user/Patient.r", "GET", "/Patient/p1/_history/1", ALLOW),
        ("user/Patient.s", "GET", "/Patient/p1/_history/1", DENY),
        ("system/Patient.r", "GET", "/Patient/p1/_history", ALLOW),
        ("system/Observation.r", "GET", "/Patient/p1/_history", DENY),
        # search (GET and POST _search) needs s
        ("system/Patient.s", "GET", "/Patient", ALLOW),
        ("system/Patient.r", "GET", "/Patient", DENY),
        ("system/Patient.s", "POST", "/Patient/_search", ALLOW),
        ("system/Patient.r", "POST", "/Patient/_search", DENY),
        # history-type needs rs
        ("system/Patient.rs", "GET", "/Patient/_history", ALLOW),
        ("system/Patient.s", "GET", "/Patient/_history", DENY),
        # create / update / patch / delete
        ("system/Patient.c", "POST", "/Patient", ALLOW),
        ("system/Patient.rs", "POST", "/Patient", DENY),
        ("system/Patient.u", "PUT", "/Patient/p1", ALLOW),
        ("system/Patient.c", "PUT", "/Patient/p1", DENY),
        ("system/Patient.u", "PATCH", "/Patient/p1", ALLOW),
        ("system/Patient.r", "PATCH", "/Patient/p1", DENY),
        ("system/Patient.d", "DELETE", "/Patient/p1", ALLOW),
        ("system/Patient.cru", "DELETE", "/Patient/p1", DENY),
        ("system/Patient.write", "DELETE", "/Patient/p1", ALLOW),
        # system-level search and history need system/ scopes (FHIR-06)
        ("system/*.rs", "GET", "/", ALLOW),
        ("system/*.rs", "GET", "/_history", ALLOW),
        ("user/*.rs", "GET", "/", DENY),
        ("user/*.rs", "GET", "/_history", DENY),
        ("patient/*.rs", "GET", "/_history", DENY),
        ("system/Patient.rs", "GET", "/_history", DENY),
        ("system/Patient.rs", "GET", "/?_type=Patient", ALLOW),
        ("system/Patient.rs", "GET", "/?_type=Patient,Observation", DENY),
        ("system/Patient.rs", "GET", "/", DENY),
        ("system/*.rs", "POST", "/_search", ALLOW),
        # $operations need the OperationDefinition URL
        ("system/*.*", "POST", "/$participate", DENY),
        (
            "https://fhir.example.nz/OperationDefinition/participate",
            "POST",
            "/$participate",
            ALLOW,
        ),
        (
            "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            "GET",
            "/Patient/p1/$everything",
            ALLOW,
        ),
        (
            "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            "POST",
            "/Observation/$validate",
            ALLOW,
        ),
        ("system/*.cruds", "GET", "/Patient/p1/$everything", DENY),
        # constrained scopes need the constraint in the query
        ("system/Observation.rs?category=laboratory", "GET", "/Observation", DENY),
        (
            "system/Observation.rs?category=laboratory",
            "GET",
            "/Observation?category=laboratory",
            ALLOW,
        ),
        (
            "system/Observation.rs?category=laboratory",
            "GET",
            "/Observation?category=laboratory,social-history",
            DENY,
        ),
        ("system/Observation.rs?category=laboratory", "GET", "/Observation/o1", DENY),
        # Health NZ URL-prefixed scopes
        (
            "https://api.hip.digital.health.nz/fhir/system/Patient.r",
            "GET",
            "/Patient/p1",
            ALLOW,
        ),
        (
            "https://api.hip.digital.health.nz/fhir/system/Patient.r",
            "PUT",
            "/Patient/p1",
            DENY,
        ),
        # batch decides per entry; capabilities are open to any token
        ("openid", "POST", "/", ALLOW),
        ("openid", "GET", "/metadata", ALLOW),
    ],
)
def test_authorise_maps_interactions_to_letters(
    scope: str, method: str, target: str, expected: str
) -> None:
    if expected == ALLOW:
        assert not decide(scope, method, target).confined
    else:
        with pytest.raises(Forbidden):
            decide(scope, method, target)


@pytest.mark.parametrize(
    ("scope", "target", "expected"),
    [
        ("system/Patient.rs", "/Patient?_include=Patient:general-practitioner", DENY),
        (
            "system/Patient.rs system/Practitioner.rs",
            "/Patient?_include=Patient:general-practitioner:Practitioner",
            ALLOW,
        ),
        ("system/Patient.rs system/Practitioner.rs", "/Patient?_include=*", DENY),
        ("system/*.rs", "/Patient?_include=*", ALLOW),
        ("system/Patient.rs", "/Patient?_revinclude=Observation:subject", DENY),
        (
            "system/Patient.rs system/Observation.rs",
            "/Patient?_revinclude=Observation:subject",
            ALLOW,
        ),
        (
            "system/Patient.rs system/Observation.rs",
            "/Patient?_revinclude:iterate=Provenance:target",
            DENY,
        ),
        ("system/Patient.rs", "/Patient?_has:Observation:subject:code=1", DENY),
        (
            "system/Patient.rs system/Observation.s",
            "/Patient?_has:Observation:subject:code=1",
            DENY,
        ),
        (
            "system/Patient.rs system/Observation.rs",
            "/Patient?_has:Observation:subject:code=1",
            ALLOW,
        ),
        ("system/Observation.rs", "/Observation?subject.name=x", DENY),
        (
            "system/Observation.rs system/Patient.rs",
            "/Observation?subject:Patient.name=x",
            ALLOW,
        ),
        (
            "system/Observation.rs system/Patient.rs",
            "/Observation?subject:Patient.organization:Organization.name=x",
            DENY,
        ),
        (
            "system/Observation.rs system/Patient.rs system/Organization.rs",
            "/Observation?subject:Patient.organization:Organization.name=x",
            ALLOW,
        ),
    ],
)
def test_authorise_covers_reached_types(scope: str, target: str, expected: str) -> None:
    if expected == ALLOW:
        decide(scope, "GET", target)
    else:
        with pytest.raises(InsufficientScope):
            decide(scope, "GET", target)


@pytest.mark.parametrize(
    ("method", "target", "query"),
    [
        ("GET", "/Observation", (("subject", "Patient/pat-A"),)),
        ("GET", "/Observation?code=1", (("code", "1"), ("subject", "Patient/pat-A"))),
        ("GET", "/Observation?patient=pat-A", (("patient", "pat-A"),)),
        ("GET", "/Observation?subject=Patient/pat-A", (("subject", "Patient/pat-A"),)),
        (
            "GET",
            "/Observation?subject:Patient=pat-A",
            (("subject:Patient", "pat-A"),),
        ),
        (
            "GET",
            "/Observation?patient=https://gw.example/fhir/Patient/pat-A",
            (("patient", "https://gw.example/fhir/Patient/pat-A"),),
        ),
        (
            "GET",
            "/Observation?performer=Practitioner/pr-1",
            (("performer", "Practitioner/pr-1"), ("subject", "Patient/pat-A")),
        ),
        (
            "GET",
            "/Observation?performer=Patient/pat-A,Practitioner/pr-1",
            (
                ("performer", "Patient/pat-A,Practitioner/pr-1"),
                ("subject", "Patient/pat-A"),
            ),
        ),
        ("GET", "/Patient", (("_id", "pat-A"),)),
        ("GET", "/Patient?name=x", (("name", "x"), ("_id", "pat-A"))),
        ("GET", "/Patient?_id=pat-A", (("_id", "pat-A"),)),
        ("POST", "/Encounter/_search", (("patient", "Patient/pat-A"),)),
        (
            "GET",
            "/Patient?_id=pat-A&_revinclude=Observation:focus",
            (("_id", "pat-A"), ("_revinclude", "Observation:focus")),
        ),
        ("GET", "/Group", (("member", "Patient/pat-A"),)),
        ("GET", "/Appointment", (("actor", "Patient/pat-A"),)),
        ("GET", "/AdverseEvent", (("subject", "Patient/pat-A"),)),
        ("GET", "/Condition", (("patient", "Patient/pat-A"),)),
    ],
)
def test_patient_scopes_pin_searches(
    method: str, target: str, query: tuple[tuple[str, str], ...]
) -> None:
    decision = decide("patient/*.rs", method, target, patient="pat-A")
    assert decision.patient == "pat-A"
    assert decision.request.query == query


@pytest.mark.parametrize(
    ("scope", "method", "target"),
    [
        # BODY-06: every value of every patient-bearing parameter, any spelling
        ("patient/*.rs", "GET", "/Observation?patient=pat-A,pat-B"),
        ("patient/*.rs", "GET", "/Observation?patient=pat-B,pat-A"),
        ("patient/*.rs", "GET", "/Observation?patient=pat-A&patient=pat-B"),
        ("patient/*.rs", "GET", "/Observation?subject=Patient/pat-B"),
        ("patient/*.rs", "GET", "/Observation?subject=pat-B"),
        ("patient/*.rs", "GET", "/Observation?subject:Patient=pat-B"),
        ("patient/*.rs", "GET", "/Observation?patient:Patient=pat-B"),
        ("patient/*.rs", "GET", "/Observation?patient=Group/g1"),
        ("patient/*.rs", "GET", "/Observation?patient=https://x.example/Patient/pat-B"),
        ("patient/*.rs", "GET", "/Observation?patient=Patient/pat-B/_history/1"),
        ("patient/*.rs", "GET", "/Observation?performer=Patient/pat-B"),
        ("patient/*.rs", "GET", "/Observation?patient.identifier=x|y"),
        ("patient/*.rs", "GET", "/Observation?subject:Patient.name=x"),
        ("patient/*.rs", "GET", "/Observation?patient:missing=true"),
        ("patient/*.rs", "GET", "/Observation?patient:identifier=x|y"),
        ("patient/*.rs", "GET", "/Observation?patient="),
        ("patient/*.rs", "GET", "/Observation?patient=pat-A,"),
        ("patient/*.rs", "GET", "/Patient?_id=pat-B"),
        ("patient/*.rs", "GET", "/Patient?_id=pat-A,pat-B"),
        ("patient/*.rs", "GET", "/Patient?_id:not=pat-A"),
        ("patient/*.rs", "GET", "/Patient?link=Patient/pat-B"),
        ("patient/*.rs", "GET", "/AllergyIntolerance?asserter=pat-B"),
        # Patient reads and writes only for the token's patient
        ("patient/*.rs", "GET", "/Patient/pat-B"),
        ("patient/*.rs", "GET", "/Patient/pat-B/_history/1"),
        ("patient/*.rs", "GET", "/Patient/pat-B/_history"),
        ("patient/*.cruds", "PUT", "/Patient/pat-B"),
        ("patient/*.cruds", "DELETE", "/Patient/pat-B"),
        # what the compartment cannot prove before the upstream is refused
        ("patient/*.cruds", "PUT", "/Observation/o1"),
        ("patient/*.cruds", "PATCH", "/Observation/o1"),
        ("patient/*.cruds", "DELETE", "/Observation/o1"),
        ("patient/*.rs", "GET", "/Observation/_history"),
        # types outside the compartment are not granted by patient/ scopes
        ("patient/*.rs", "GET", "/Practitioner/pr-1"),
        ("patient/Practitioner.rs", "GET", "/Practitioner"),
        ("patient/*.rs", "GET", "/Medication"),
        # confined operations: only on the patient itself
        (
            "patient/*.rs http://hl7.org/fhir/OperationDefinition/Patient-everything",
            "GET",
            "/Patient/pat-B/$everything",
        ),
        (
            "patient/*.rs http://hl7.org/fhir/OperationDefinition/Resource-validate",
            "POST",
            "/Observation/$validate",
        ),
    ],
)
def test_patient_scopes_refuse_outside_the_compartment(
    scope: str, method: str, target: str
) -> None:
    with pytest.raises(Forbidden):
        decide(scope, method, target, patient="pat-A")


@pytest.mark.parametrize(
    ("scope", "method", "target"),
    [
        ("patient/*.rs", "GET", "/Patient/pat-A"),
        ("patient/Patient.r", "GET", "/Patient/pat-A/_history/3"),
        ("patient/*.rs", "GET", "/Observation/o1"),
        ("patient/Observation.r", "GET", "/Observation/o1/_history/2"),
        ("patient/*.cruds", "PUT", "/Patient/pat-A"),
        ("patient/*.cruds", "POST", "/Observation"),
        (
            "patient/*.rs http://hl7.org/fhir/OperationDefinition/Patient-everything",
            "GET",
            "/Patient/pat-A/$everything",
        ),
    ],
)
def test_patient_scopes_confine_allowed_requests(
    scope: str, method: str, target: str
) -> None:
    assert decide(scope, method, target, patient="pat-A").patient == "pat-A"


@pytest.mark.parametrize("patient", [None, "", "a/b", "x" * 65])
def test_patient_scopes_need_a_patient_context(patient: str | None) -> None:
    with pytest.raises(InsufficientScope):
        decide("patient/*.rs", "GET", "/Observation", patient=patient)


def test_unconfined_scope_wins_over_patient_scope() -> None:
    decision = decide(
        "user/Observation.rs patient/*.rs", "GET", "/Observation", patient="pat-A"
    )
    assert not decision.confined
    assert decision.request.query == ()


def test_mixed_scopes_confine_when_an_include_needs_the_patient_scope() -> None:
    decision = decide(
        "user/Observation.rs patient/Patient.rs",
        "GET",
        "/Observation?_include=Observation:subject:Patient",
        patient="pat-A",
    )
    assert decision.patient == "pat-A"
    assert ("subject", "Patient/pat-A") in decision.request.query


def test_refusals_before_upstream_are_uniform() -> None:
    """Not yours and not there are the same 403, with no hint of either."""
    refusals: list[Refusal] = []
    for target in ("/Patient/pat-B", "/Patient/does-not-exist"):
        with pytest.raises(Forbidden) as refused:
            decide("patient/*.rs", "GET", target, patient="pat-A")
        refusals.append(refused.value)
    assert {(r.status, r.message, r.detail) for r in refusals} == {
        (403, "The request is not permitted.", "compartment_other_patient")
    }
