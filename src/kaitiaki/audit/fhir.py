"""Audit records as FHIR R4 AuditEvent resources in a Bundle.

Shaped after Health NZ's HiraAuditEvent profile (type ``rest``, action,
recorded, outcome and outcomeDesc with the HTTP status, purposeOfEvent from
the NZ purpose-of-use value set, a ``system`` agent for the client and an
``organisation`` agent with the HPI organisation and facility, the source
observer, an ``accessedResource`` entity with the correlation id, a
``dataSubject`` entity for the patient) and IHE BALP (subtype = the RESTful
interaction, the Basic Audit profile per action). The patient is exported as
its keyed hash, never the NHI: the export may leave the secured audit store.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from typing import Any

from kaitiaki.audit.events import Record

__all__ = ["to_audit_event", "to_bundle"]

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_V3_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_NZ_PURPOSE = "https://standards.digital.health.nz/ns/nz-purpose-of-use"
_NZ_CODES = frozenset({"NZLEG", "NZRISK", "NZCHILD", "NZSCREEN", "NOTSUPPLIED"})
_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
_HPI_ORG = "https://standards.digital.health.nz/ns/hpi-organisation-id"
_HPI_FACILITY = "https://standards.digital.health.nz/ns/hpi-facility-id"
_PATIENT_HASH = "urn:kaitiaki:audit:patient-hmac-sha256"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
_NAMESPACE = uuid.UUID("6f1c1c52-7a43-4b8e-9a43-6b6169746961")

# FHIR interaction → (AuditEvent.action, BALP profile)
_ACTIONS = {
    "read": ("R", "Read"),
    "vread": ("R", "Read"),
    "history-instance": ("R", "Read"),
    "capabilities": ("R", "Read"),
    "search-type": ("E", "Query"),
    "search-type-post": ("E", "Query"),
    "search-system": ("E", "Query"),
    "create": ("C", "Create"),
    "update": ("U", "Update"),
    "delete": ("D", "Delete"),
}


def _outcome(record: Record) -> str:
    status = int(record.get("status") or 0)
    if record.get("event_type") == "security":
        return "0" if record.get("outcome") == "success" else "4"
    if status >= 500:
        return "8"
    return "4" if status >= 400 else "0"


def _purpose(record: Record) -> list[dict[str, Any]]:
    codes = str(record.get("purpose_of_use") or "").split() or ["NOTSUPPLIED"]
    return [
        {
            "coding": [
                {
                    "system": _NZ_PURPOSE if code in _NZ_CODES else _V3_REASON,
                    "code": code,
                }
            ]
        }
        for code in codes
    ]


def _agents(record: Record) -> list[dict[str, Any]]:
    system: dict[str, Any] = {
        "type": {"coding": [{"system": _ROLE, "code": "dataprocessor"}]},
        "who": {"display": record.get("client_id") or "(unauthenticated)"},
        "requestor": True,
    }
    if record.get("client_address"):
        system["network"] = {"address": record["client_address"], "type": "2"}
    if record.get("token_id"):
        system["policy"] = [f"urn:kaitiaki:token-hmac:{record['token_id']}"]
    agents = [system]
    if record.get("organisation") or record.get("facility"):
        organisation: dict[str, Any] = {
            "type": {"text": "organisation"},
            "requestor": False,
        }
        if record.get("organisation"):
            organisation["who"] = {
                "identifier": {"system": _HPI_ORG, "value": record["organisation"]}
            }
        if record.get("facility"):
            organisation["location"] = {
                "identifier": {"system": _HPI_FACILITY, "value": record["facility"]}
            }
        agents.append(organisation)
    return agents


def _entities(record: Record) -> list[dict[str, Any]]:
    details = [{"type": "correlationId", "valueString": record.get("correlation_id")}]
    if record.get("refusal_code"):
        details.append({"type": "refusalCode", "valueString": record["refusal_code"]})
    accessed: dict[str, Any] = {
        "what": {"display": record.get("route")},
        "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
        "description": f"{record.get('method')} {record.get('route')}",
        "detail": details,
    }
    if record.get("query"):
        accessed["query"] = base64.b64encode(str(record["query"]).encode()).decode()
    entities = [accessed]
    if record.get("patient"):
        entities.append(
            {
                "what": {
                    "identifier": {"system": _PATIENT_HASH, "value": record["patient"]}
                },
                "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    return entities


def _event_id(record: Record) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{record.get('instance')}/{record.get('seq')}"))


def to_audit_event(record: Record) -> dict[str, Any]:
    """One request or security record as an AuditEvent resource."""
    action, profile = _ACTIONS.get(str(record.get("interaction")), ("E", "Query"))
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": _event_id(record),
        "meta": {"profile": [_BALP + profile]},
        "type": {"system": _EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "action": action,
        "recorded": record.get("time"),
        "outcome": _outcome(record),
        "outcomeDesc": str(record.get("status")),
        "purposeOfEvent": _purpose(record),
        "agent": _agents(record),
        "source": {
            "observer": {"display": f"Kaitiaki gateway {record.get('instance')}"},
            "type": [{"system": _SOURCE_TYPE, "code": "3", "display": "Web Server"}],
        },
        "entity": _entities(record),
    }
    if record.get("interaction"):
        resource["subtype"] = [{"system": _INTERACTION, "code": record["interaction"]}]
    if record.get("interaction"):
        resource["subtype"] = [{"system": _INTERACTION, "code": record["interaction"]}]
    if record.get("event_type") == "security":
        resource.pop("meta")
        resource["type"] = {
            "system": _DCM,
            "code": "110113",
            "display": "Security Alert",
        }
        resource["subtype"] = [{"code": record.get("action")}]
        resource["outcomeDesc"] = str(record.get("detail") or record.get("action"))
        resource["entity"] = []
    return resource


def to_bundle(records: Iterable[Record]) -> dict[str, Any]:
    """A ``collection`` Bundle of AuditEvents; checkpoints are left out."""
    entries = [
        {"fullUrl": f"urn:uuid:{_event_id(record)}", "resource": to_audit_event(record)}
        for record in records
        if record.get("event_type") in ("request", "security")
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": entries,
    }
