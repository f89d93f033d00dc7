"""A deterministic, obviously synthetic NZ dataset for the reference API.

Every NHI is a Z-prefixed test value that passes its check character; every
name is a sample name (``Tauira`` is te reo Māori for "sample"). Ids are fixed
(``pat-1``, ``obs-3`` …) so that tests and documentation can name them.
"""

from __future__ import annotations

from typing import Any

from kaitiaki.nz.identifiers import (
    HPI_FACILITY_SYSTEM,
    HPI_ORGANISATION_SYSTEM,
    HPI_PERSON_SYSTEM,
    NHI_SYSTEM,
)

__all__ = ["PATIENT_NHIS", "seed_resources"]

Resource = dict[str, Any]

_LOINC = "http://loinc.org"
_SNOMED = "http://snomed.info/sct"
_UCUM = "http://unitsofmeasure.org"

# id suffix, NHI, given, family, gender, birth date, street, suburb, city, postcode
_PATIENTS = (
    ("1", "ZZZ0016", "Aroha", "Tauira", "female", "1985-03-14",
     "1 Tauira Street", "Ponsonby", "Auckland", "1011"),
    ("2", "ZAC5361", "Wiremu", "Tauira", "male", "1952-11-02",
     "22 Example Road", "Kelburn", "Wellington", "6012"),
    ("3", "ZKC4633", "Mere", "Tauira-Whakamātau", "female", "1999-07-30",
     "3 Sample Lane", "Riccarton", "Christchurch", "8011"),
    ("4", "ZAA0067", "Hēmi", "Tauira", "male", "1978-01-21",
     "4 Test Terrace", "Maeroa", "Hamilton", "3200"),
    ("5", "ZJM9397", "Ngaio", "Tauira", "female", "2010-09-09",
     "55 Example Avenue", "North East Valley", "Dunedin", "9010"),
    ("6", "ZXE24NV", "Jane", "Example", "female", "1990-05-05",
     "6 Sample Street", "Te Aro", "Wellington", "6011"),
    ("7", "ZAK21MS", "John", "Sample", "male", "1967-12-12",
     "7 Test Road", "Mount Maunganui", "Tauranga", "3116"),
    ("8", "ZDP92ZR", "Olivia", "Testperson", "female", "2001-02-28",
     "8 Example Crescent", "Fitzroy", "New Plymouth", "4312"),
    ("9", "ZNK28DJ", "Liam", "Sample", "male", "1945-08-15",
     "9 Sample Place", "Akina", "Hastings", "4122"),
    ("10", "ZQF54PV", "Charlotte", "Example", "female", "1972-04-01",
     "10 Test Street", "Stoke", "Nelson", "7011"),
)  # fmt: skip

PATIENT_NHIS = tuple(row[1] for row in _PATIENTS)

# id suffix, CPN, given, family
_PRACTITIONERS = (
    ("1", "99ZZZS", "Rangi", "Tauira"),
    ("2", "99ZZZZ", "Emma", "Example"),
    ("3", "91ZZXN", "Tama", "Sample"),
)

# id suffix, HPI organisation id, name
_ORGANIZATIONS = (
    ("1", "G00001-G", "Tauira Health Centre (synthetic)"),
    ("2", "GZZ956-B", "Example Hospital Trust (synthetic)"),
)

# id suffix, HPI facility id, name, managing organisation suffix
_LOCATIONS = (
    ("1", "FZZ999-B", "Tauira Medical Centre (synthetic)", "1"),
    ("2", "FZZ997-J", "Example Hospital Ward 1 (synthetic)", "2"),
)

# LOINC code, display, UCUM unit, value for patient n (a base and a step)
_VITALS = (
    ("8867-4", "Heart rate", "/min", 62.0, 3.0),
    ("8310-5", "Body temperature", "Cel", 36.5, 0.1),
    ("29463-7", "Body weight", "kg", 58.0, 4.5),
    ("9279-1", "Respiratory rate", "/min", 12.0, 1.0),
)

_CONDITIONS = (
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195967001", "Asthma"),
)

_ALLERGIES = (
    ("764146007", "Penicillin"),
    ("256349002", "Peanut"),
)


def _patient(row: tuple[str, ...]) -> Resource:
    suffix, nhi, given, family, gender, birth, line, suburb, city, postcode = row
    return {
        "resourceType": "Patient",
        "id": f"pat-{suffix}",
        "identifier": [{"use": "official", "system": NHI_SYSTEM, "value": nhi}],
        "name": [{"use": "usual", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": [line, suburb],
                "city": city,
                "postalCode": postcode,
                "country": "NZ",
            }
        ],
    }


def _directory() -> list[Resource]:
    practitioners = [
        {
            "resourceType": "Practitioner",
            "id": f"prac-{suffix}",
            "identifier": [
                {"use": "official", "system": HPI_PERSON_SYSTEM, "value": cpn}
            ],
            "name": [{"family": family, "given": [given], "prefix": ["Dr"]}],
        }
        for suffix, cpn, given, family in _PRACTITIONERS
    ]
    organizations = [
        {
            "resourceType": "Organization",
            "id": f"org-{suffix}",
            "identifier": [
                {"use": "official", "system": HPI_ORGANISATION_SYSTEM, "value": hpi}
            ],
            "active": True,
            "name": name,
        }
        for suffix, hpi, name in _ORGANIZATIONS
    ]
    locations = [
        {
            "resourceType": "Location",
            "id": f"loc-{suffix}",
            "identifier": [
                {"use": "official", "system": HPI_FACILITY_SYSTEM, "value": hpi}
            ],
            "status": "active",
            "name": name,
            "managingOrganization": {"reference": f"Organization/org-{org}"},
        }
        for suffix, hpi, name, org in _LOCATIONS
    ]
    return [*practitioners, *organizations, *locations]


def _encounter(index: int) -> Resource:
    site = 1 + index % 2
    day = f"2024-0{1 + index % 9}-1{index % 10}"
    return {
        "resourceType": "Encounter",
        "id": f"enc-{index}",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "subject": {"reference": f"Patient/pat-{index}"},
        "participant": [
            {"individual": {"reference": f"Practitioner/prac-{1 + index % 3}"}}
        ],
        "period": {"start": f"{day}T21:00:00Z", "end": f"{day}T21:20:00Z"},
        "location": [{"location": {"reference": f"Location/loc-{site}"}}],
        "serviceProvider": {"reference": f"Organization/org-{site}"},
    }


def _observations(patient: int, first_id: int) -> list[Resource]:
    category = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
                "display": "Vital Signs",
            }
        ]
    }
    return [
        {
            "resourceType": "Observation",
            "id": f"obs-{first_id + offset}",
            "status": "final",
            "category": [category],
            "code": {"coding": [{"system": _LOINC, "code": code, "display": display}]},
            "subject": {"reference": f"Patient/pat-{patient}"},
            "encounter": {"reference": f"Encounter/enc-{patient}"},
            "effectiveDateTime": "2024-06-01T09:10:00+12:00",
            "valueQuantity": {
                "value": round(base + step * (patient % 5), 1),
                "unit": unit,
                "system": _UCUM,
                "code": unit,
            },
        }
        for offset, (code, display, unit, base, step) in enumerate(_VITALS)
    ]


def _condition(index: int, patient: int) -> Resource:
    code, display = _CONDITIONS[(index - 1) % len(_CONDITIONS)]
    return {
        "resourceType": "Condition",
        "id": f"cond-{index}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": _SNOMED, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/pat-{patient}"},
        "recordedDate": "2023-11-20",
    }


def _allergy(index: int, patient: int) -> Resource:
    code, display = _ALLERGIES[(index - 1) % len(_ALLERGIES)]
    return {
        "resourceType": "AllergyIntolerance",
        "id": f"allergy-{index}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/"
                    "allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "type": "allergy",
        "criticality": "high",
        "code": {"coding": [{"system": _SNOMED, "code": code, "display": display}]},
        "patient": {"reference": f"Patient/pat-{patient}"},
        "recordedDate": "2022-04-05",
    }


def _consent(index: int, patient: int) -> Resource:
    return {
        "resourceType": "Consent",
        "id": f"consent-{index}",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": _LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/pat-{patient}"},
        "dateTime": "2024-01-15T10:00:00+13:00",
        "organization": [{"reference": "Organization/org-1"}],
        "provision": {"type": "deny" if patient == 3 else "permit"},
    }


def seed_resources() -> list[Resource]:
    """The whole synthetic dataset, the same on every call."""
    resources = [_patient(row) for row in _PATIENTS]
    resources += _directory()
    resources += [_encounter(index) for index in range(1, 6)]
    for patient in range(1, 6):
        resources += _observations(patient, 1 + (patient - 1) * len(_VITALS))
    resources += [
        _condition(index, patient) for index, patient in enumerate((1, 2, 2, 4), 1)
    ]
    resources += [_allergy(index, patient) for index, patient in enumerate((1, 3), 1)]
    resources += [
        _consent(index, patient) for index, patient in enumerate((1, 2, 3), 1)
    ]
    return resources
