"""The FHIR R4 Patient compartment: which resources belong to a patient.

:data:`PATIENT_COMPARTMENT` follows the R4 CompartmentDefinition for Patient
(``http://hl7.org/fhir/CompartmentDefinition/patient``): for each resource
type, the search parameters that place a resource in a patient's compartment
and the elements those parameters read. A resource is in patient *P*'s
compartment when it is Patient *P* itself, or when one of those elements
references ``Patient/P``. Types that are not listed (Practitioner,
Organization, Medication, ...) are in no patient's compartment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = [
    "PATIENT_COMPARTMENT",
    "in_patient_compartment",
    "patient_parameters",
    "pin_parameter",
    "reference_patient",
]

# type -> ((search parameter, ...), (element path, ...)); paths use "." between
# elements and are followed through lists.
PATIENT_COMPARTMENT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Account": (("subject",), ("subject",)),
    "AdverseEvent": (("subject",), ("subject",)),
    "AllergyIntolerance": (
        ("patient", "recorder", "asserter"),
        ("patient", "recorder", "asserter"),
    ),
    "Appointment": (("actor",), ("participant.actor",)),
    "AppointmentResponse": (("actor",), ("actor",)),
    "AuditEvent": (("patient",), ("agent.who", "entity.what")),
    "Basic": (("patient", "author"), ("subject", "author")),
    "BodyStructure": (("patient",), ("patient",)),
    "CarePlan": (("patient", "performer"), ("subject", "activity.detail.performer")),
    "CareTeam": (("patient", "participant"), ("subject", "participant.member")),
    "ChargeItem": (("subject",), ("subject",)),
    "Claim": (("patient", "payee"), ("patient", "payee.party")),
    "ClaimResponse": (("patient",), ("patient",)),
    "ClinicalImpression": (("subject",), ("subject",)),
    "Communication": (
        ("subject", "sender", "recipient"),
        ("subject", "sender", "recipient"),
    ),
    "CommunicationRequest": (
        ("subject", "sender", "recipient", "requester"),
        ("subject", "sender", "recipient", "requester"),
    ),
    "Composition": (
        ("subject", "author", "attester"),
        ("subject", "author", "attester.party"),
    ),
    "Condition": (("patient", "asserter"), ("subject", "asserter")),
    "Consent": (("patient",), ("patient",)),
    "Coverage": (
        ("policy-holder", "subscriber", "beneficiary", "payor"),
        ("policyHolder", "subscriber", "beneficiary", "payor"),
    ),
    "CoverageEligibilityRequest": (("patient",), ("patient",)),
    "CoverageEligibilityResponse": (("patient",), ("patient",)),
    "DetectedIssue": (("patient",), ("patient",)),
    "DeviceRequest": (("subject", "performer"), ("subject", "performer")),
    "DeviceUseStatement": (("subject",), ("subject",)),
    "DiagnosticReport": (("subject",), ("subject",)),
    "DocumentManifest": (
        ("subject", "author", "recipient"),
        ("subject", "author", "recipient"),
    ),
    "DocumentReference": (("subject", "author"), ("subject", "author")),
    "Encounter": (("patient",), ("subject",)),
    "EnrollmentRequest": (("subject",), ("candidate",)),
    "EpisodeOfCare": (("patient",), ("patient",)),
    "ExplanationOfBenefit": (("patient", "payee"), ("patient", "payee.party")),
    "FamilyMemberHistory": (("patient",), ("patient",)),
    "Flag": (("patient",), ("subject",)),
    "Goal": (("patient",), ("subject",)),
    "Group": (("member",), ("member.entity",)),
    "ImagingStudy": (("patient",), ("subject",)),
    "Immunization": (("patient",), ("patient",)),
    "ImmunizationEvaluation": (("patient",), ("patient",)),
    "ImmunizationRecommendation": (("patient",), ("patient",)),
    "Invoice": (("subject", "patient", "recipient"), ("subject", "recipient")),
    "List": (("subject", "source"), ("subject", "source")),
    "MeasureReport": (("patient",), ("subject",)),
    "Media": (("subject",), ("subject",)),
    "MedicationAdministration": (
        ("patient", "performer", "subject"),
        ("subject", "performer.actor"),
    ),
    "MedicationDispense": (
        ("subject", "patient", "receiver"),
        ("subject", "receiver"),
    ),
    "MedicationRequest": (("subject",), ("subject",)),
    "MedicationStatement": (("subject",), ("subject",)),
    "MolecularSequence": (("patient",), ("patient",)),
    "NutritionOrder": (("patient",), ("patient",)),
    "Observation": (("subject", "performer"), ("subject", "performer")),
    "Patient": (("link",), ("link.other",)),
    "Person": (("patient",), ("link.target",)),
    "Procedure": (("patient", "performer"), ("subject", "performer.actor")),
    "Provenance": (("patient",), ("target",)),
    "QuestionnaireResponse": (("subject", "author"), ("subject", "author")),
    "RelatedPerson": (("patient",), ("patient",)),
    "RequestGroup": (("subject", "participant"), ("subject", "action.participant")),
    "ResearchSubject": (("individual",), ("individual",)),
    "RiskAssessment": (("subject",), ("subject",)),
    "Schedule": (("actor",), ("actor",)),
    "ServiceRequest": (("subject", "performer"), ("subject", "performer")),
    "Specimen": (("subject",), ("subject",)),
    "SupplyDelivery": (("patient",), ("patient",)),
    "SupplyRequest": (("subject",), ("deliverTo",)),
    "VisionPrescription": (("patient",), ("patient",)),
}

_PATIENT_REF = re.compile(
    r"(?:.*/)?Patient/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def patient_parameters(resource_type: str) -> frozenset[str]:
    """Search parameters of ``resource_type`` whose values can name a patient."""
    if resource_type == "Patient":
        return frozenset({"_id", "link"})
    params, _ = PATIENT_COMPARTMENT.get(resource_type, ((), ()))
    return frozenset({*params, "patient"} if params else ())


def pin_parameter(resource_type: str) -> str | None:
    """The parameter that confines a search of ``resource_type`` to one patient.

    ``_id`` for Patient; otherwise ``patient`` where the CompartmentDefinition
    names it, else its first parameter (each is a search parameter of the
    type, so every R4 server knows it).
    """
    if resource_type == "Patient":
        return "_id"
    entry = PATIENT_COMPARTMENT.get(resource_type)
    if entry is None:
        return None
    return "patient" if "patient" in entry[0] else entry[0][0]


def reference_patient(reference: str) -> str | None:
    """The patient id a reference string names (relative or absolute), or None."""
    match = _PATIENT_REF.fullmatch(reference)
    return match.group("id") if match else None


def _values(node: Any, path: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, path)
        return
    if not path:
        yield node
        return
    if isinstance(node, dict) and path[0] in node:
        yield from _values(node[path[0]], path[1:])


def _references(resource: dict[str, Any], paths: tuple[str, ...]) -> Iterator[str]:
    for path in paths:
        for value in _values(resource, path.split(".")):
            reference = value.get("reference") if isinstance(value, dict) else None
            if isinstance(reference, str):
                yield reference


def in_patient_compartment(resource: Any, patient_id: str) -> bool:
    """True when ``resource`` belongs to patient ``patient_id``'s compartment."""
    if not isinstance(resource, dict):
        return False
    resource_type = resource.get("resourceType")
    if resource_type == "Patient" and resource.get("id") == patient_id:
        return True
    entry = (
        PATIENT_COMPARTMENT.get(resource_type)
        if isinstance(resource_type, str)
        else None
    )
    if entry is None:
        return False
    return any(
        reference_patient(reference) == patient_id
        for reference in _references(resource, entry[1])
    )
