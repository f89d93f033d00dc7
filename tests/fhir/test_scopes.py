import pytest

from kaitiaki.fhir.scopes import covers, parse_scopes


@pytest.mark.parametrize(
    ("scope", "resource_type", "letters", "granted"),
    [
        ("system/*.rs", "Patient", "r", True),
        ("system/*.rs", "Patient", "c", False),
        ("system/*.*", "Observation", "cruds", True),
        ("system/Patient.*", "Patient", "cruds", True),
        ("system/Patient.cruds", "Patient", "d", True),
        ("system/Patient.cruds", "Observation", "r", False),
        ("system/Patient.read", "Patient", "rs", True),
        ("system/Patient.write", "Patient", "c", True),
        ("system/Patient.write", "Patient", "u", True),
        ("system/Patient.write", "Patient", "r", False),
        ("user/Observation.rs", "Observation", "s", True),
        ("user/Observation.read", "Observation", "r", True),
        ("patient/Observation.rs", "Observation", "s", True),
        ("system/Patient.sr", "Patient", "r", False),
        ("system/Patient.rc", "Patient", "r", False),
        ("system/patient.rs", "Patient", "r", False),
        ("System/Patient.rs", "Patient", "r", False),
        ("system/Patient.RS", "Patient", "r", False),
        ("system/Patient.", "Patient", "r", False),
        (
            "https://api.hip.digital.health.nz/fhir/system/Patient.r",
            "Patient",
            "r",
            True,
        ),
        (
            "https://api.hip.digital.health.nz/fhir/system/Patient.s",
            "Patient",
            "r",
            False,
        ),
        ("https://api.other.example/fhir/system/Patient.r", "Patient", "r", False),
        ("https://api.hip.digital.health.nz/system/Patient.r", "Patient", "r", False),
        ("openid profile", "Patient", "r", False),
        ("system/Patient.r system/Patient.s", "Patient", "rs", True),
        ("system/Patient.r   system/Patient.s", "Patient", "rs", True),
    ],
)
def test_covers_decides_letters(
    scope: str, resource_type: str, letters: str, granted: bool
) -> None:
    grants = parse_scopes(scope, prefixes=("https://api.hip.digital.health.nz/fhir/",))
    assert covers(grants.scopes, resource_type, letters) is granted


@pytest.mark.parametrize(
    ("scope", "query", "granted"),
    [
        ("system/Observation.rs?category=laboratory", [], False),
        (
            "system/Observation.rs?category=laboratory",
            [("category", "laboratory")],
            True,
        ),
        (
            "system/Observation.rs?category=laboratory",
            [("category", "laboratory,vital-signs")],
            False,
        ),
        (
            "system/Observation.rs?category=laboratory",
            [("category", "laboratory"), ("category", "vital-signs")],
            False,
        ),
        (
            "system/Observation.rs?_tag=https://x.nz/cs|rf-nz",
            [("_tag", "https://x.nz/cs|rf-nz")],
            True,
        ),
        ("system/Observation.rs?category", [("category", "x")], False),
    ],
)
def test_constrained_scope_needs_the_constraint(
    scope: str, query: list[tuple[str, str]], granted: bool
) -> None:
    pairs = tuple(query)

    def satisfies(constraint: tuple[tuple[str, str], ...]) -> bool:
        return all(
            [v for k, v in pairs if k == name] != []
            and all(
                set(v.split(",")) <= set(want.split(",")) for k, v in pairs if k == name
            )
            for name, want in constraint
        )

    assert covers(parse_scopes(scope).scopes, "Observation", "s", satisfies) is granted


def test_constrained_scope_without_predicate_grants_nothing() -> None:
    scopes = parse_scopes("system/Observation.rs?category=laboratory").scopes
    assert not covers(scopes, "Observation", "s")


def test_parse_scopes_collects_operations_and_raw_scopes() -> None:
    grants = parse_scopes(
        "openid sdhr-bulk-post "
        "https://fhir-ig.digital.health.nz/sdhr/OperationDefinition/participate "
        "patient/Observation.rs user/Patient.r"
    )
    assert grants.operations == {
        "https://fhir-ig.digital.health.nz/sdhr/OperationDefinition/participate"
    }
    assert "sdhr-bulk-post" in grants.raw
    assert grants.has_patient_scopes and grants.has_unconfined_scopes
    assert [s.context for s in grants.scopes] == ["patient", "user"]
