import pytest

from kaitiaki.errors import MethodNotAllowed, NotFound
from kaitiaki.fhir.interactions import match_interaction
from kaitiaki.fhir.scopes import covers, parse_scopes


@pytest.mark.parametrize(
    ("scope", "resource_type", "letters", "granted"),
    [
        ("system/*.rs", "Patient", "r", True),
        ("system/*.rs", "Patient", "c", False),
        ("system/Patient.cruds", "Patient", "d", True),
        ("system/Patient.cruds", "Observation", "r", False),
        ("system/Patient.read", "Patient", "rs", True),
        ("system/Patient.write", "Patient", "c", True),
        ("system/Patient.write", "Patient", "r", False),
        ("user/Observation.rs", "Observation", "s", True),
        ("patient/Observation.rs", "Observation", "s", False),
        ("system/Observation.rs?category=laboratory", "Observation", "s", False),
        ("system/Patient.sr", "Patient", "r", False),
        (
            "https://api.hip.digital.health.nz/fhir/system/Patient.r",
            "Patient",
            "r",
            True,
        ),
        ("openid profile", "Patient", "r", False),
        ("system/Patient.r system/Patient.s", "Patient", "rs", True),
    ],
)
def test_covers_decides_letters(
    scope: str, resource_type: str, letters: str, granted: bool
) -> None:
    assert covers(parse_scopes(scope), resource_type, letters) is granted


@pytest.mark.parametrize(
    ("method", "path", "name", "letters"),
    [
        ("GET", "/metadata", "capabilities", ""),
        ("GET", "/Patient", "search-type", "s"),
        ("POST", "/Patient", "create", "c"),
        ("POST", "/Patient/_search", "search-type-post", "s"),
        ("GET", "/Patient/p1", "read", "r"),
        ("HEAD", "/Patient/p1", "read", "r"),
        ("PUT", "/Patient/p1", "update", "u"),
        ("DELETE", "/Patient/p1", "delete", "d"),
        ("GET", "/Patient/p1/_history", "history-instance", "r"),
        ("GET", "/Patient/p1/_history/2", "vread", "r"),
    ],
)
def test_match_interaction_maps_letters(
    method: str, path: str, name: str, letters: str
) -> None:
    interaction = match_interaction(method, path)
    assert (interaction.name, interaction.letters) == (name, letters)


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "", NotFound),
        ("POST", "", NotFound),
        ("GET", "/patient", NotFound),
        ("GET", "/Patient/$everything", NotFound),
        ("GET", "/_history", NotFound),
        ("PATCH", "/Patient/p1", MethodNotAllowed),
        ("POST", "/Patient/p1", MethodNotAllowed),
    ],
)
def test_match_interaction_refuses_unrouted(
    method: str, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        match_interaction(method, path)
