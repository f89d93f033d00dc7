"""Search parameters against HL7's R4 definitions: every corpus search passes,
anything not understood is refused."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kaitiaki.errors import InvalidContent
from kaitiaki.fhir.search import SearchDefinitions
from kaitiaki.request import parse_query

CORPUS = Path(__file__).resolve().parents[3] / "shared/data/fhir-nz-examples"
EXTRA = tomllib.loads(
    (Path(__file__).parent / "data/ig-search-parameters.toml").read_text()
)
ALL_LINES = (CORPUS / "searches.txt").read_text().splitlines()
# System-level search (GET /fhir?_type=...) is not routed (404, see
# docs/architecture.md), so it has no resource type to check against.
SYSTEM = [line for line in ALL_LINES if line.split()[1].startswith("/fhir?")]
LINES = [line for line in ALL_LINES if line not in SYSTEM]


def _type_and_query(target: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    parts = urlsplit(target)
    segments = [s for s in parts.path.split("/")[2:] if s]
    query = parse_query(parts.query.encode(), max_bytes=8192)
    if not segments:
        return None, query
    # /Type, /Type/id, /Type/$op, /Patient/id/Type (compartment)
    return (segments[2] if len(segments) == 3 else segments[0]), query


@pytest.fixture(scope="module")
def search() -> SearchDefinitions:
    return SearchDefinitions.load_r4({k: tuple(v) for k, v in EXTRA.items()})


def test_searches_corpus_is_present() -> None:
    assert len(ALL_LINES) == 255
    assert len(SYSTEM) == 1


@pytest.mark.parametrize("line", LINES)
def test_search_accepts_every_corpus_search(
    search: SearchDefinitions, line: str
) -> None:
    _method, target = line.split()
    resource_type, query = _type_and_query(target)
    assert resource_type is not None
    search.check(resource_type, query)


REFUSED = [
    ("Patient", "nickname=x", "value"),
    ("Patient", "family:fuzzy=x", "value"),
    ("Patient", "birthdate:exact=2000", "value"),
    ("Patient", "_summary=maybe", "value"),
    ("Patient", "_total=all", "value"),
    ("Patient", "_sort=nickname", "value"),
    ("Patient", "_include=Patient:nickname", "value"),
    ("Patient", "_include=Nope:general-practitioner", "value"),
    ("Patient", "_include:recurse=Patient:organization", "value"),
    ("Patient", "_revinclude=Observation:code", "value"),
    ("Patient", "_elements=name,a-b", "value"),
    ("Patient", "_has:Observation:code:status=final", "value"),
    ("Patient", "_has:Nope:patient:code=x", "value"),
    ("Patient", "_has:Observation:patient=x", "value"),
    ("Observation", "subject:Practitioner.name=x", "value"),
    ("Observation", "subject.nickname=x", "value"),
    ("Observation", "code.system=x", "value"),
    (
        "Observation",
        "subject:Patient.organization.partof.partof.partof.name=x",
        "value",
    ),
    ("Patient", "_count=5&_count=6", "structure"),
    ("Patient", "_summary=true&_summary=count", "structure"),
    ("Patient", "_sort=name&_sort=birthdate", "structure"),
    ("Nope", "name=x", "value"),
    ("Patient", "birthdate=yesterday", "value"),
    ("Patient", "birthdate=ge1985-06-02T25", "value"),
    ("Patient", "birthdate=xx1985", "value"),
    ("Patient", "birthdate=1970,", "value"),
    ("Patient", "family=", "value"),
    ("Patient", "death-date:missing=maybe", "value"),
    ("Observation", "value-quantity=lots", "value"),
    ("Observation", "value-quantity=gt5|a|b|c", "value"),
    ("RiskAssessment", "probability=high", "value"),
]


@pytest.mark.parametrize(("resource_type", "query", "code"), REFUSED)
def test_search_refuses(
    search: SearchDefinitions, resource_type: str, query: str, code: str
) -> None:
    pairs = parse_query(query.encode(), max_bytes=4096)
    with pytest.raises(InvalidContent) as caught:
        search.check(resource_type, pairs)
    assert caught.value.issue_code == code
    assert caught.value.expression is not None
    assert caught.value.expression.startswith("parameter[")
    assert pairs[-1][0] not in caught.value.message


@pytest.mark.parametrize(
    "query",
    [
        "birthdate=ge1970&birthdate=le1980",  # repeated search parameter: AND
        "_include=Patient:organization&_include=Patient:general-practitioner",
        "_revinclude=Observation:subject:Patient",
        "organization:Organization.name=x",
        "_id=a,b&_lastUpdated=gt2020&_tag=s|c&_profile=http://x&_security=s|R",
        "_text=x&_content=y&_list=l1&_format=json&_count=0",
        "_has:Observation:subject:code=http://loinc.org|1",
        "_summary=count&_total=accurate&_elements=id,name&_sort=-birthdate,family",
        "birthdate=ge1970-01-01T00:00:00Z&birthdate=le1980-12-31T23:59:59.5%2B13:00",
        "family=a\\,b&death-date:missing=true",
    ],
)
def test_search_accepts(search: SearchDefinitions, query: str) -> None:
    search.check("Patient", parse_query(query.encode(), max_bytes=4096))


def test_search_unknown_allowed_when_operator_says_so() -> None:
    lenient = SearchDefinitions.load_r4({}, allow_unknown=True)
    lenient.check("Patient", (("nickname", "x"),))
    with pytest.raises(InvalidContent):
        lenient.check("Patient", (("_count", "1"), ("_count", "2")))


def test_search_from_capability_statement() -> None:
    statement = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Patient",
                        "searchParam": [
                            {"name": "identifier", "type": "token"},
                            {"name": "iwi", "type": "token"},
                        ],
                    }
                ],
            }
        ],
    }
    declared = SearchDefinitions.from_capability(statement)
    declared.check("Patient", (("identifier", "s|v"), ("iwi", "x"), ("_id", "a")))
    with pytest.raises(InvalidContent):  # R4 knows it, but the server does not
        declared.check("Patient", (("family", "x"),))
    with pytest.raises(InvalidContent):  # a type the server does not declare
        declared.check("Observation", (("code", "x"),))
