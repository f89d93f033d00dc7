"""The synthetic dataset: valid test-range identifiers, fixed ids, references."""

from __future__ import annotations

from collections import Counter

import pytest
from refapi_support import TestClient

from kaitiaki.nz.identifiers import (
    HPI_FACILITY_SYSTEM,
    HPI_ORGANISATION_SYSTEM,
    HPI_PERSON_SYSTEM,
    NHI_SYSTEM,
    is_valid_cpn,
    is_valid_hpi_facility,
    is_valid_hpi_organisation,
    is_valid_nhi,
)
from kaitiaki.refapi.seed import PATIENT_NHIS, seed_resources

_VALIDATORS = {
    NHI_SYSTEM: is_valid_nhi,
    HPI_PERSON_SYSTEM: is_valid_cpn,
    HPI_ORGANISATION_SYSTEM: is_valid_hpi_organisation,
    HPI_FACILITY_SYSTEM: is_valid_hpi_facility,
}


@pytest.mark.parametrize("nhi", PATIENT_NHIS)
def test_seed_nhi_is_valid_test_range(nhi: str) -> None:
    assert is_valid_nhi(nhi)
    assert nhi.startswith("Z")


def test_seed_nhis_mix_old_and_new_formats() -> None:
    old = [nhi for nhi in PATIENT_NHIS if nhi[3:].isdigit()]

    assert 0 < len(old) < len(PATIENT_NHIS)
    assert len(set(PATIENT_NHIS)) == len(PATIENT_NHIS)


def test_seed_every_nz_identifier_is_valid() -> None:
    checked = 0
    for resource in seed_resources():
        for identifier in resource.get("identifier", []):
            assert _VALIDATORS[identifier["system"]](identifier["value"])
            checked += 1

    assert checked == 17


def test_seed_is_deterministic_with_unique_ids() -> None:
    first, second = seed_resources(), seed_resources()
    keys = [(item["resourceType"], item["id"]) for item in first]

    assert first == second
    assert len(keys) == len(set(keys))
    counts = Counter(item["resourceType"] for item in first)
    assert counts["Patient"] == 10
    assert counts.keys() >= {
        "Practitioner",
        "Organization",
        "Location",
        "Encounter",
        "Observation",
        "Condition",
        "AllergyIntolerance",
        "Consent",
    }


def test_seed_references_resolve() -> None:
    resources = seed_resources()
    known = {f"{item['resourceType']}/{item['id']}" for item in resources}

    def references(value: object) -> list[str]:
        if isinstance(value, dict):
            found = [value["reference"]] if "reference" in value else []
            return found + [ref for item in value.values() for ref in references(item)]
        if isinstance(value, list):
            return [ref for item in value for ref in references(item)]
        return []

    for resource in resources:
        for reference in references(resource):
            assert reference in known


def test_seed_observations_use_loinc_and_ucum() -> None:
    observations = [r for r in seed_resources() if r["resourceType"] == "Observation"]

    for observation in observations:
        assert observation["code"]["coding"][0]["system"] == "http://loinc.org"
        quantity = observation["valueQuantity"]
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert quantity["code"] == quantity["unit"]


def test_seed_is_loaded_on_first_start(client: TestClient) -> None:
    for resource in seed_resources():
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        stored = client.get(path).json()
        stored.pop("meta")
        assert stored == resource
