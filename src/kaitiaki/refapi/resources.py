"""What the reference API serves: resource types, search parameters, outcomes."""

from __future__ import annotations

import json
import re
from typing import Any

from kaitiaki.errors import BadRequest, NotFound, Refusal

__all__ = [
    "FHIR_JSON",
    "PATIENT_REFERENCE_FIELD",
    "RESOURCE_TYPES",
    "SEARCH_PARAMS",
    "StorageFailed",
    "UnsupportedResourceType",
    "WriteConflict",
    "capability_statement",
    "check_id",
    "check_type",
    "outcome_body",
]

FHIR_JSON = "application/fhir+json"

#: Resource types whose ``identifier`` is indexed for search.
_IDENTIFIED = ("Patient", "Practitioner", "Organization", "Location")

#: Resource types that point at a patient, and the element that does it.
PATIENT_REFERENCE_FIELD = {
    "Encounter": "subject",
    "Observation": "subject",
    "Condition": "subject",
    "AllergyIntolerance": "patient",
    "Consent": "patient",
}

RESOURCE_TYPES = frozenset({*_IDENTIFIED, *PATIENT_REFERENCE_FIELD})

_COMMON_PARAMS = ("_id", "_count")


def _params_for(resource_type: str) -> tuple[str, ...]:
    if resource_type in PATIENT_REFERENCE_FIELD:
        return (*_COMMON_PARAMS, "patient", "subject")
    return (*_COMMON_PARAMS, "identifier")


SEARCH_PARAMS = {name: frozenset(_params_for(name)) for name in RESOURCE_TYPES}

_PARAM_TYPES = {
    "_id": "token",
    "_count": "number",
    "identifier": "token",
    "patient": "reference",
    "subject": "reference",
}

# FHIR R4 id datatype.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class UnsupportedResourceType(NotFound):
    """The URL names a resource type this server does not serve."""

    code = "unsupported_resource_type"
    issue_code = "not-supported"


class WriteConflict(Refusal):
    """A concurrent write to the same resource won the race."""

    status = 409
    code = "write_conflict"
    issue_code = "conflict"


class StorageFailed(Refusal):
    """The database failed; the detail is logged, never shown."""

    status = 500
    code = "storage_failed"
    issue_code = "exception"


def check_type(resource_type: str) -> str:
    """Return ``resource_type`` if it is served, else refuse with 404."""
    if resource_type not in RESOURCE_TYPES:
        raise UnsupportedResourceType("This resource type is not supported.")
    return resource_type


def check_id(resource_id: str) -> str:
    """Return ``resource_id`` if it is a valid FHIR id, else refuse with 400."""
    if not _ID.fullmatch(resource_id):
        raise BadRequest("The resource id is not a valid FHIR id.", expression="id")
    return resource_id


def outcome_body(refusal: Refusal) -> bytes:
    """An OperationOutcome for ``refusal``; only its safe message is shown."""
    issue: dict[str, Any] = {
        "severity": "fatal" if refusal.status >= 500 else "error",
        "code": refusal.issue_code,
        "details": {"text": refusal.message},
    }
    if refusal.expression:
        issue["expression"] = [refusal.expression]
    body = {"resourceType": "OperationOutcome", "issue": [issue]}
    return json.dumps(body, separators=(",", ":")).encode()


def _rest_resource(resource_type: str) -> dict[str, Any]:
    interactions = ("read", "search-type", "create", "update", "delete")
    return {
        "type": resource_type,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned-update",
        "readHistory": False,
        "updateCreate": True,
        "searchParam": [
            {"name": name, "type": _PARAM_TYPES[name]}
            for name in sorted(SEARCH_PARAMS[resource_type])
        ],
    }


def capability_statement(date: str) -> dict[str, Any]:
    """The CapabilityStatement served at ``{base}/metadata``."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "Kaitiaki reference FHIR API"},
        "implementation": {
            "description": "Synthetic NZ health information for the demo"
        },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [_rest_resource(name) for name in sorted(RESOURCE_TYPES)],
            }
        ],
    }
