"""NZ identifier checks in searches and bodies, and no false positives on the
NZ implementation-guide corpus."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kaitiaki.controls.identifiers import check_resource_identifiers, check_search
from kaitiaki.errors import BadRequest
from kaitiaki.request import canonical_path, parse_query
from kaitiaki.settings import ValidationSettings

CORPUS = Path(__file__).resolve().parents[3] / "shared/data/fhir-nz-examples"
NHI = "https://standards.digital.health.nz/ns/nhi-id"
HPI_ORG = "https://standards.digital.health.nz/ns/hpi-organisation-id"
DEFAULTS = ValidationSettings()


@pytest.mark.parametrize(
    "query",
    [
        (("identifier", f"{NHI}|ZZZ0017"),),
        (("identifier", f"{NHI}|ZAC5361,{NHI}|ZZZ0044"),),
        (("subject:Patient.identifier", f"{NHI}|ABC1234"),),
        (("identifier", f"{HPI_ORG}|G00001-H"),),
        (("identifier", f"{NHI}|"),),
        (("_count", "-1"),),
        (("_count", "ten"),),
        (("_count", "10"), ("_count", "20")),
    ],
)
def test_check_search_refuses_bad_identifiers_and_counts(
    query: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(BadRequest) as caught:
        check_search(query, DEFAULTS)
    assert "ZZZ" not in caught.value.message
    assert caught.value.expression is not None


def test_check_search_caps_count_and_keeps_valid_identifiers() -> None:
    query = (
        ("identifier", f"{NHI}|ZAC5361"),
        ("identifier", "ZZZ0017"),
        ("_count", "5000"),
    )
    assert check_search(query, DEFAULTS) == (
        ("identifier", f"{NHI}|ZAC5361"),
        ("identifier", "ZZZ0017"),
        ("_count", "100"),
    )


def test_check_search_allow_list_admits_known_fixtures() -> None:
    settings = ValidationSettings(identifier_allow_list=("ZMW9001",))
    assert check_search((("identifier", f"{NHI}|zmw9001"),), settings)
    with pytest.raises(BadRequest):
        check_search((("identifier", f"{NHI}|ZMW9002"),), settings)


def test_check_resource_identifiers_names_the_element() -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": NHI, "value": "ZAC5361"},
            {"system": NHI, "value": "ZZZ0017"},
        ],
    }
    with pytest.raises(BadRequest) as caught:
        check_resource_identifiers(patient, DEFAULTS)
    assert caught.value.expression == "Patient.identifier[1].value"
    observation = {
        "resourceType": "Observation",
        "subject": {"identifier": {"system": NHI, "value": 7}},
    }
    with pytest.raises(BadRequest):
        check_resource_identifiers(observation, DEFAULTS)


def _corpus_resources() -> list[Path]:
    return sorted(CORPUS.glob("*/*.json"))


def test_corpus_is_present() -> None:
    assert len(_corpus_resources()) >= 100


# Genuinely invalid identifiers in the published examples, with the reason.
KNOWN_INVALID: dict[str, str] = {
    "Bundle-0c463c87-f6b1-4909-a7e9-df126054cffc.json": (
        "MDR: requester hpi-person-id values like '63576' are not CPNs (NNXXXX)"
    ),
    "Bundle-b7cbd26f-7d7b-48fe-9bda-e8dc5ce1901a.json": (
        "MDR: requester hpi-person-id values like '52049' are not CPNs"
    ),
    "Patient-cfsb1610999277413.json": "Medtech: NHI 'AAB2456' fails its check digit",
    "Organization-organization1.json": (
        "Northern Region: placeholder HPI organisation id 'hpiorg-01'"
    ),
    "Patient-patient1.json": "Northern Region: placeholder NHI 'ABC1234'",
    "Patient-real-1.json": "Northern Region: NHI '3331796' is not in NHI format",
    "Practitioner-practitioner1.json": (
        "Northern Region: placeholder CPN 'hpi-person-001'"
    ),
    "Patient-patient-nhi.json": (
        "NZ Base: NHI values 'activeIdent', 'dormant', 'dormant2' are placeholders"
    ),
    "PractitionerRole-practitionerRole-creator.json": (
        "NZ Base: contained Organization with HPI organisation id 'mmh'"
    ),
}


@pytest.mark.parametrize("path", _corpus_resources(), ids=lambda p: p.name)
def test_corpus_resources_have_no_false_positives(path: Path) -> None:
    resource = json.loads(path.read_text("utf-8"))
    if path.name in KNOWN_INVALID:
        with pytest.raises(BadRequest):
            check_resource_identifiers(resource, DEFAULTS)
        return
    check_resource_identifiers(resource, DEFAULTS)


def _searches() -> list[str]:
    lines = (CORPUS / "searches.txt").read_text("utf-8").splitlines()
    return [line for line in lines if line.startswith("GET ")]


@pytest.mark.parametrize("line", _searches())
def test_corpus_searches_pass_the_edge_and_identifier_checks(line: str) -> None:
    target = urlsplit(line.split(" ", 1)[1])
    canonical_path(target.path.encode(), max_bytes=4096)
    query = parse_query(target.query.encode(), max_bytes=4096)
    check_search(query, DEFAULTS)


@pytest.mark.parametrize(
    "name",
    [
        "subject:identifier",
        "patient:identifier",
        "beneficiary:identifier",
        "subject:Patient.identifier",
        "_has:Coverage:beneficiary:identifier",
    ],
)
def test_check_search_identifier_modifier_is_checked(name: str) -> None:
    bad = ((name, "https://standards.digital.health.nz/ns/nhi-id|ZJM9398"),)
    with pytest.raises(BadRequest):
        check_search(bad, ValidationSettings())
    good = ((name, "https://standards.digital.health.nz/ns/nhi-id|ZJM9397"),)
    assert check_search(good, ValidationSettings()) == good
