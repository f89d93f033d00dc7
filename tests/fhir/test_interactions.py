import pytest

from kaitiaki.errors import MethodNotAllowed, NotFound
from kaitiaki.fhir.interactions import match_interaction


@pytest.mark.parametrize(
    ("method", "path", "name", "letters"),
    [
        ("GET", "/metadata", "capabilities", ""),
        ("GET", "/.well-known/smart-configuration", "well-known", ""),
        ("GET", "", "search-system", "s"),
        ("POST", "", "batch", ""),
        ("POST", "/_search", "search-system-post", "s"),
        ("GET", "/_history", "history-system", "rs"),
        ("GET", "/Patient", "search-type", "s"),
        ("POST", "/Patient", "create", "c"),
        ("POST", "/Patient/_search", "search-type-post", "s"),
        ("GET", "/Patient/_history", "history-type", "rs"),
        ("GET", "/Patient/p1", "read", "r"),
        ("HEAD", "/Patient/p1", "read", "r"),
        ("PUT", "/Patient/p1", "update", "u"),
        ("PATCH", "/Patient/p1", "patch", "u"),
        ("DELETE", "/Patient/p1", "delete", "d"),
        ("GET", "/Patient/p1/_history", "history-instance", "r"),
        ("GET", "/Patient/p1/_history/2", "vread", "r"),
        ("GET", "/$meta", "operation-system", ""),
        ("POST", "/Patient/$validate", "operation-type", ""),
        ("GET", "/Patient/p1/$everything", "operation-instance", ""),
        ("POST", "/Patient/p1/$everything", "operation-instance", ""),
    ],
)
def test_match_interaction_maps_letters(
    method: str, path: str, name: str, letters: str
) -> None:
    interaction = match_interaction(method, path)
    assert (interaction.name, interaction.letters) == (name, letters)


def test_match_interaction_names_operation_and_body() -> None:
    get = match_interaction("GET", "/Patient/p1/$everything")
    post = match_interaction("POST", "/Patient/p1/$everything")
    assert (get.operation, get.resource_id, get.has_body) == ("everything", "p1", False)
    assert post.has_body and post.route == "/{type}/{id}/$everything"


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/patient", NotFound),
        ("GET", "/Patient/$Everything", NotFound),
        ("GET", "/Patient/p1/$everything/x", NotFound),
        ("GET", "/.well-known", NotFound),
        ("GET", "/.well-known/a/b", NotFound),
        ("GET", "/Patient/p1/_history/2/x", NotFound),
        ("DELETE", "", MethodNotAllowed),
        ("PUT", "/Patient", MethodNotAllowed),
        ("POST", "/Patient/p1", MethodNotAllowed),
        ("DELETE", "/_history", MethodNotAllowed),
        ("PATCH", "/Patient", MethodNotAllowed),
        ("DELETE", "/Patient/p1/$everything", MethodNotAllowed),
    ],
)
def test_match_interaction_refuses_unrouted(
    method: str, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        match_interaction(method, path)
