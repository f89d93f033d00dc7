"""NHI-keyed Patient ids (validation.nhi_patient_ids): off by default, and
when on, every Patient id in the path, search values and body references."""

from __future__ import annotations

from typing import Any

import pytest

from kaitiaki.controls.patient_ids import check_patient_ids
from kaitiaki.errors import InvalidContent
from kaitiaki.fhir.interactions import match_interaction
from kaitiaki.settings import ValidationSettings

ON = ValidationSettings(nhi_patient_ids=True)
NHI_URL = "https://api.hip.digital.health.nz/fhir/nhi/v1/Patient/"


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "expression"),
    [
        ("GET", "/Patient/ZJM9398", (), None, "Patient.id"),
        ("GET", "/Patient/ABC1234/_history/1", (), None, "Patient.id"),
        ("GET", "/Coverage", (("beneficiary", "ZAA0793"),), None, "parameter[0]"),
        (
            "GET",
            "/Observation",
            (("patient", "Patient/ZJM9398"),),
            None,
            "parameter[0]",
        ),
        (
            "GET",
            "/Observation",
            (("patient", NHI_URL + "ZKC7285"),),
            None,
            "parameter[0]",
        ),
        (
            "GET",
            "/Observation",
            (("subject", "Patient/ZJM9398"),),
            None,
            "parameter[0]",
        ),
        (
            "GET",
            "/Observation",
            (("subject:Patient", "ZJM9398"),),
            None,
            "parameter[0]",
        ),
        (
            "GET",
            "/Observation",
            (("patient", "ZJM9397,ZJM9398"),),
            None,
            "parameter[0]",
        ),
        ("GET", "/Patient", (("_id", "ZJM9397,ABC1234"),), None, "parameter[0]"),
        (
            "POST",
            "/Observation",
            (),
            {
                "resourceType": "Observation",
                "subject": {"reference": "Patient/ZZZ0017"},
            },
            "reference",
        ),
    ],
)
def test_nhi_patient_ids_refused(
    method: str,
    path: str,
    query: tuple[tuple[str, str], ...],
    body: dict[str, Any] | None,
    expression: str,
) -> None:
    interaction = match_interaction(method, path)
    with pytest.raises(InvalidContent) as caught:
        check_patient_ids(interaction, query, body, ON)
    assert caught.value.expression == expression
    assert caught.value.issue_code == "value"
    # Off (the default), the same request passes.
    check_patient_ids(interaction, query, body, ValidationSettings())


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/Patient/ZJM9397", ()),
        ("/Coverage", (("beneficiary", "ZAA0792"),)),
        ("/Observation", (("patient", NHI_URL + "ZKC7284"),)),
        ("/Observation", (("subject", "Group/g1"), ("performer", "Practitioner/x"))),
        ("/Observation", (("subject", "g1"),)),  # bare id of unknown type
        ("/Observation", (("patient.identifier", "s|v"),)),  # chain: not an id
        ("/Patient", (("_id", "ZJM9397,ZAA0792"),)),
    ],
)
def test_nhi_patient_ids_accepted(
    path: str, query: tuple[tuple[str, str], ...]
) -> None:
    check_patient_ids(match_interaction("GET", path), query, None, ON)


def test_nhi_patient_ids_allow_list() -> None:
    settings = ValidationSettings(
        nhi_patient_ids=True, identifier_allow_list=("ABC1234",)
    )
    check_patient_ids(match_interaction("GET", "/Patient/abc1234"), (), None, settings)
