import pytest

from kaitiaki.gateway.public import is_public

DEFAULT = ("/metadata", "/.well-known/*")


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/metadata", True),
        ("/.well-known/smart-configuration", True),
        ("/.well-known/udap", True),
        ("/.well-known", False),
        ("/.well-known/", False),
        ("/.well-known/a/b", False),
        ("/metadata/x", False),
        ("/Metadata", False),
        ("/Patient", False),
        ("", False),
    ],
)
def test_is_public_matches_listed_paths_only(path: str, public: bool) -> None:
    assert is_public(path, DEFAULT) is public
