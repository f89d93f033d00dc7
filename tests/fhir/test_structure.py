"""FHIR R4 structure validation: no false positives on the NZ corpus, and each
kind of fault refused with the right issue code and element."""

from __future__ import annotations

import copy
import gzip
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from kaitiaki.controls.identifiers import check_resource_identifiers
from kaitiaki.errors import BadRequest, InvalidContent
from kaitiaki.fhir.structure import FhirDefinitions, embedded_resources
from kaitiaki.settings import ValidationSettings

CORPUS = Path(__file__).resolve().parents[3] / "shared/data/fhir-nz-examples"
FILES = sorted(CORPUS.glob("*/*.json"))


@pytest.fixture(scope="module")
def definitions() -> FhirDefinitions:
    return FhirDefinitions.load_r4()


def test_corpus_is_present() -> None:
    # SOURCE.md counts 115 resources; a missing corpus must fail, not pass.
    assert len(FILES) == 115


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_structure_accepts_every_corpus_example(
    definitions: FhirDefinitions, path: Path
) -> None:
    definitions.check(json.loads(path.read_bytes()))


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "ZJM9397",
    "identifier": [
        {"system": "https://standards.digital.health.nz/ns/nhi-id", "value": "ZJM9397"}
    ],
    "name": [{"family": "Matariki", "given": ["Jamie"]}],
    "gender": "female",
    "birthDate": "1985-06-02",
    "multipleBirthInteger": 2,
    "contained": [{"resourceType": "Organization", "id": "o1", "name": "Clinic"}],
}


def _with(change: str, value: Any) -> dict[str, Any]:
    resource = copy.deepcopy(PATIENT)
    node: Any = resource
    *parents, last = change.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return resource


BAD_PATIENTS = [
    ("unknown element", _with("nickname", "J"), "structure", "Patient"),
    (
        "wrong type",
        _with("name.0.given", "Jamie"),
        "structure",
        "Patient.name[0].given",
    ),
    ("string not object", _with("name.0", "Jamie"), "structure", "Patient.name[0]"),
    ("null value", _with("name.0.family", None), "structure", "Patient.name[0].family"),
    ("null code", _with("gender", None), "value", "Patient.gender"),
    ("enum value", _with("gender", "F"), "value", "Patient.gender"),
    ("date pattern", _with("birthDate", "02/06/1985"), "value", "Patient.birthDate"),
    ("id pattern", _with("id", "a|b"), "value", "Patient.id"),
    ("id too long", _with("id", "x" * 65), "value", "Patient.id"),
    ("empty string", _with("name.0.family", ""), "value", "Patient.name[0].family"),
    (
        "vertical tab",
        _with("name.0.family", "a\x0bb"),
        "value",
        "Patient.name[0].family",
    ),
    ("empty array", _with("name", []), "structure", "Patient.name"),
    (
        "int as decimal",
        _with("multipleBirthInteger", 2.5),
        "structure",
        "Patient.multipleBirthInteger",
    ),
    (
        "int beyond safe range",
        _with("multipleBirthInteger", 2**53 + 1),
        "value",
        "Patient.multipleBirthInteger",
    ),
    ("boolean as string", _with("active", "true"), "structure", "Patient.active"),
    (
        "extension without url",
        _with("extension", [{"valueString": "x"}]),
        "required",
        "Patient.extension[0].url",
    ),
    (
        "contained resource invalid",
        _with("contained.0.name", 7),
        "structure",
        "Patient.contained[0].name",
    ),
    (
        "contained without resourceType",
        _with("contained.0", {"id": "o1"}),
        "required",
        "Patient.contained[0].resourceType",
    ),
    (
        "contained unknown type",
        _with("contained.0", {"resourceType": "Nope"}),
        "value",
        "Patient.contained[0].resourceType",
    ),
    ("missing link.other", _with("link", [{"type": "seealso"}]), "required", None),
]


@pytest.mark.parametrize(
    ("case", "resource", "code", "expression"),
    BAD_PATIENTS,
    ids=[case[0] for case in BAD_PATIENTS],
)
def test_structure_refuses_patient(
    definitions: FhirDefinitions,
    case: str,
    resource: dict[str, Any],
    code: str,
    expression: str | None,
) -> None:
    with pytest.raises(InvalidContent) as caught:
        definitions.check(resource)
    assert caught.value.issue_code == code
    assert caught.value.status == 400
    if expression is not None:
        assert caught.value.expression == expression
    # Never a value from the resource, never an unknown member name.
    for text in ("Jamie", "nickname", "02/06", "a|b", "Nope"):
        assert text not in (caught.value.expression or "")
        assert text not in caught.value.message


def test_structure_accepts_the_base_patient(definitions: FhirDefinitions) -> None:
    definitions.check(PATIENT)


def test_structure_integer_overflow_is_refused(definitions: FhirDefinitions) -> None:
    resource = _with("multipleBirthInteger", 2**31)
    with pytest.raises(InvalidContent):
        definitions.check(resource)
    definitions.check(_with("multipleBirthInteger", 2**31 - 1))


@pytest.mark.parametrize(
    ("resource", "code"),
    [
        ([], "structure"),
        ("Patient", "structure"),
        ({}, "required"),
        ({"resourceType": 7}, "required"),
        ({"resourceType": "Resource"}, "value"),
        ({"resourceType": "patient"}, "value"),
        ({"resourceType": "Project"}, "value"),  # Medplum-only: not R4
    ],
)
def test_structure_refuses_non_resources(
    definitions: FhirDefinitions, resource: Any, code: str
) -> None:
    with pytest.raises(InvalidContent) as caught:
        definitions.check(resource)
    assert caught.value.issue_code == code


def _bundle(*entries: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": entry} for entry in entries],
    }


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (
            _bundle(PATIENT, _with("gender", "F")),
            "Bundle.entry[1].resource.gender",
        ),
        (
            _bundle(PATIENT, {"resourceType": "Observation", "status": "final"}),
            "Bundle.entry[1].resource.code",
        ),
        (
            _bundle(_bundle(PATIENT, _with("id", "a b"))),
            "Bundle.entry[0].resource.entry[1].resource.id",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "batch-response",
                "entry": [{"response": {"status": "400", "outcome": {"issue": []}}}],
            },
            "Bundle.entry[0].response.outcome.resourceType",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "p", "part": [{"name": "q", "resource": {"id": "x"}}]}
                ],
            },
            "Parameters.parameter[0].part[0].resource.resourceType",
        ),
    ],
)
def test_structure_checks_every_embedded_resource(
    definitions: FhirDefinitions, resource: dict[str, Any], expression: str
) -> None:
    with pytest.raises(InvalidContent) as caught:
        definitions.check(resource)
    assert caught.value.expression == expression


def test_structure_embedded_locations_match_the_schema() -> None:
    # embedded_resources() hard-codes where resources nest; the schema is the
    # authority, so any other ResourceList element would fail this test.
    raw = resources.files("kaitiaki.fhir").joinpath(
        "definitions/fhir-r4.schema.json.gz"
    )
    schema = json.loads(gzip.decompress(raw.read_bytes()))
    found = set()
    for name, definition in schema["definitions"].items():
        for prop, spec in definition.get("properties", {}).items():
            ref = spec.get("$ref") or spec.get("items", {}).get("$ref")
            if ref == "#/definitions/ResourceList":
                found.add((name.split("_")[0] if prop != "contained" else "*", prop))
    assert found == {
        ("*", "contained"),
        ("Bundle", "resource"),
        ("Bundle", "outcome"),
        ("Parameters", "resource"),
    }
    nested = {"resourceType": "Bundle", "entry": [{"resource": PATIENT}]}
    assert [path for path, _ in embedded_resources(nested)] == ["entry[0].resource"]


NZ_FAILURES = tomllib.loads(
    (Path(__file__).parent / "data/nz-identifier-failures.toml").read_text()
)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nz_identifiers_in_corpus_examples(path: Path) -> None:
    # Every example passes, except the listed ones, which must fail (so the
    # list stays exact), and pass again once their values are allow-listed.
    resource = json.loads(path.read_bytes())
    name = f"{path.parent.name}/{path.name}"
    if name not in NZ_FAILURES:
        check_resource_identifiers(resource, ValidationSettings())
        return
    with pytest.raises(BadRequest) as caught:
        check_resource_identifiers(resource, ValidationSettings())
    assert caught.value.issue_code == "value"
    placeholders = tuple(
        value.upper() for key in ("value",) for value in _all_values(resource, key)
    )
    check_resource_identifiers(
        resource, ValidationSettings(identifier_allow_list=placeholders)
    )


def _all_values(node: Any, key: str) -> list[str]:
    if isinstance(node, dict):
        found = [node[key]] if isinstance(node.get(key), str) else []
        return found + [v for child in node.values() for v in _all_values(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _all_values(child, key)]
    return []


def test_reference_api_data_is_valid_fhir(definitions: FhirDefinitions) -> None:
    # With response_validation = "block" in front of `make run`'s reference
    # API, none of its own resources may be refused.
    from kaitiaki.refapi.resources import capability_statement
    from kaitiaki.refapi.seed import seed_resources

    definitions.check(capability_statement("2026-12-04"))
    resources_ = seed_resources()
    assert len(resources_) > 20
    for resource in resources_:
        definitions.check(resource)
