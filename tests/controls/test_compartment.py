"""Patient compartment membership and the egress check on upstream replies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kaitiaki.controls.compartment import check_in_compartment, filter_reply
from kaitiaki.errors import Forbidden, NotFound, UpstreamFailed
from kaitiaki.fhir.compartments import in_patient_compartment


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


@pytest.mark.parametrize(
    ("resource", "member"),
    [
        ({"resourceType": "Patient", "id": "pat-A"}, True),
        ({"resourceType": "Patient", "id": "pat-B"}, False),
        (
            {
                "resourceType": "Patient",
                "id": "pat-B",
                "link": [{"other": ref("Patient/pat-A")}],
            },
            True,
        ),
        ({"resourceType": "Observation", "subject": ref("Patient/pat-A")}, True),
        ({"resourceType": "Observation", "subject": ref("Patient/pat-B")}, False),
        ({"resourceType": "Observation", "performer": [ref("Patient/pat-A")]}, True),
        ({"resourceType": "Observation", "focus": [ref("Patient/pat-A")]}, False),
        (
            {
                "resourceType": "Observation",
                "subject": ref("https://h.example/fhir/Patient/pat-A"),
            },
            True,
        ),
        (
            {"resourceType": "Observation", "subject": ref("Patient/pat-A/_history/2")},
            True,
        ),
        ({"resourceType": "Observation", "subject": ref("Patient/pat-AB")}, False),
        ({"resourceType": "Observation", "subject": ref("Group/pat-A")}, False),
        ({"resourceType": "Observation", "subject": "Patient/pat-A"}, False),
        ({"resourceType": "Encounter", "subject": ref("Patient/pat-A")}, True),
        ({"resourceType": "Encounter", "patient": ref("Patient/pat-A")}, False),
        (
            {"resourceType": "AllergyIntolerance", "asserter": ref("Patient/pat-A")},
            True,
        ),
        (
            {
                "resourceType": "CarePlan",
                "activity": [{"detail": {"performer": [ref("Patient/pat-A")]}}],
            },
            True,
        ),
        (
            {
                "resourceType": "Appointment",
                "participant": [
                    {"actor": ref("Practitioner/x")},
                    {"actor": ref("Patient/pat-A")},
                ],
            },
            True,
        ),
        ({"resourceType": "Practitioner", "id": "pat-A"}, False),
        ({"resourceType": "Medication"}, False),
        ({"resourceType": 7}, False),
        ("Patient/pat-A", False),
    ],
)
def test_patient_compartment_membership(resource: Any, member: bool) -> None:
    assert in_patient_compartment(resource, "pat-A") is member


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def obs(patient: str, mode: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": {
            "resourceType": "Observation",
            "subject": ref(f"Patient/{patient}"),
        }
    }
    if mode:
        entry["search"] = {"mode": mode}
    return entry


def test_egress_removes_out_of_compartment_includes() -> None:
    """FHIR-01: _revinclude reaching another patient's data is filtered."""
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "pat-A"},
                "search": {"mode": "match"},
            },
            obs("pat-A", "include"),
            obs("pat-B", "include"),
            {
                "resource": {"resourceType": "Practitioner", "id": "p"},
                "search": {"mode": "include"},
            },
        ],
    }
    kept = json.loads(filter_reply(body(bundle), "pat-A", single=False))
    assert [e["resource"]["resourceType"] for e in kept["entry"]] == [
        "Patient",
        "Observation",
    ]
    assert kept["total"] == 1
    assert "pat-B" not in json.dumps(kept)


def test_egress_refuses_a_search_the_upstream_did_not_pin() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [obs("pat-B", "match")],
    }
    with pytest.raises(Forbidden):
        filter_reply(body(bundle), "pat-A", single=False)
    with pytest.raises(Forbidden):
        filter_reply(body({**bundle, "entry": [obs("pat-B")]}), "pat-A", single=False)


def test_egress_hides_another_patients_resource_as_not_found() -> None:
    other = {"resourceType": "Observation", "subject": ref("Patient/pat-B")}
    with pytest.raises(NotFound) as refused:
        filter_reply(body(other), "pat-A", single=True)
    assert refused.value.status == 404
    history = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [{"resource": other}],
    }
    with pytest.raises(NotFound):
        filter_reply(body(history), "pat-A", single=True)
    with pytest.raises(Forbidden):
        filter_reply(body(history), "pat-A", single=False)


def test_egress_passes_own_resources_unchanged() -> None:
    own = {"resourceType": "Observation", "subject": ref("Patient/pat-A")}
    assert json.loads(filter_reply(body(own), "pat-A", single=True)) == own
    outcome = {"resourceType": "OperationOutcome", "issue": []}
    assert json.loads(filter_reply(body(outcome), "pat-A", single=True)) == outcome


def test_egress_sends_exactly_what_it_checked() -> None:
    """Duplicate members: a client keeping the first would read pat-B."""
    reply = (
        b'{"resourceType":"Observation","subject":{"reference":"Patient/pat-B"},'
        b'"subject":{"reference":"Patient/pat-A"}}'
    )
    sent = filter_reply(reply, "pat-A", single=True)
    assert b"pat-B" not in sent
    assert json.loads(sent)["subject"] == ref("Patient/pat-A")


def test_egress_replaces_batch_entries_outside_the_compartment() -> None:
    reply = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": obs("pat-A")["resource"], "response": {"status": "200 OK"}},
            {"resource": obs("pat-B")["resource"], "response": {"status": "200 OK"}},
            {
                "resource": {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [obs("pat-B", "match")],
                },
                "response": {"status": "200 OK"},
            },
            {"response": {"status": "404 Not Found"}},
        ],
    }
    kept = json.loads(filter_reply(body(reply), "pat-A", single=False))
    assert [e["response"]["status"] for e in kept["entry"]] == [
        "200 OK",
        "404 Not Found",
        "403 Forbidden",
        "404 Not Found",
    ]
    assert "pat-B" not in json.dumps(kept)


@pytest.mark.parametrize(
    "reply", [b"not json", b"[1]", b'{"a":NaN}', b"[" * 100000 + b"]" * 100000]
)
def test_egress_fails_closed_on_unreadable_replies(reply: bytes) -> None:
    with pytest.raises(UpstreamFailed):
        filter_reply(reply, "pat-A", single=True)


def test_bodies_written_under_patient_scopes_stay_in_the_compartment() -> None:
    check_in_compartment(
        {"resourceType": "Observation", "subject": ref("Patient/pat-A")}, "pat-A"
    )
    with pytest.raises(Forbidden):
        check_in_compartment(
            {"resourceType": "Observation", "subject": ref("Patient/pat-B")}, "pat-A"
        )
    with pytest.raises(Forbidden):
        check_in_compartment({"resourceType": "Practitioner"}, "pat-A")


def test_egress_keeps_types_an_unconfined_scope_may_read() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            obs("pat-A", "match"),
            {
                "resource": {"resourceType": "Practitioner", "id": "p"},
                "search": {"mode": "include"},
            },
            obs("pat-B", "include"),
        ],
    }
    kept = json.loads(
        filter_reply(
            body(bundle), "pat-A", single=False, open_types=frozenset({"Practitioner"})
        )
    )
    assert [e["resource"]["resourceType"] for e in kept["entry"]] == [
        "Observation",
        "Practitioner",
    ]
    everything = json.loads(
        filter_reply(body(bundle), "pat-A", single=False, open_types=frozenset({"*"}))
    )
    assert len(everything["entry"]) == 3


def test_egress_prunes_operation_results() -> None:
    everything = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "pat-A"}},
            obs("pat-A", "match"),
            obs("pat-B", "match"),
            {"resource": {"resourceType": "Practitioner", "id": "p"}},
        ],
    }
    kept = json.loads(filter_reply(body(everything), "pat-A", single=True, prune=True))
    assert [e["resource"]["resourceType"] for e in kept["entry"]] == [
        "Patient",
        "Observation",
    ]
    with pytest.raises(NotFound):
        filter_reply(body(everything), "pat-A", single=True)
