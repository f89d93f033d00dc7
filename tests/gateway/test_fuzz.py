"""Property-based fuzzing through the real gateway, with a fixed seed and a
bounded budget: no input gives a 5xx, and whatever reaches the counting
upstream passes the validators again there (nothing unvalidated gets by)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaitiaki.fhir.search import SearchDefinitions
from kaitiaki.fhir.structure import FhirDefinitions
from kaitiaki.request import canonical_path, parse_query
from kaitiaki.strictjson import loads_strict
from tests.gateway.conftest import GatewayUnderTest, StandIn
from tests.gateway.validation_support import running_gateway, send_raw

JSON = "application/fhir+json"
FORWARDED: list[int] = []
BUDGET = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SEGMENTS = st.sampled_from(
    [
        "Patient",
        "Observation",
        "Nope",
        "p1",
        "_search",
        "_history",
        "1",
        "..",
        ".",
        "%2F",
        "%2e",
        "%41",
        "a%00",
        "patient",
        "",
        "$export",
        "metadata",
        "Bundle",
    ]
)
NAMES = st.sampled_from(
    [
        "identifier",
        "family",
        "family:exact",
        "_count",
        "_summary",
        "_include",
        "subject:Patient.identifier",
        "nickname",
        "_has:Observation:patient:code",
        "patient",
        "_sort",
        "gender",
        "name:fuzzy",
        "_elements",
        "access_token",
    ]
)
VALUES = st.one_of(
    st.sampled_from(
        [
            "x",
            "5",
            "-1",
            "true",
            "maybe",
            "Patient:organization",
            "https://standards.digital.health.nz/ns/nhi-id|ZJM9397",
            "https://standards.digital.health.nz/ns/nhi-id|ZJM9398",
            "a,b",
            "",
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "name", "gender", "x"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
RESOURCES = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Observation", "Nope"])},
    optional={
        "id": st.sampled_from(["p1", "a b", "x" * 70]),
        "gender": st.sampled_from(["female", "F", 1]),
        "name": st.sampled_from([[{"family": "M"}], "M", []]),
        "birthDate": st.sampled_from(["1985-06-02", "yesterday"]),
        "extra": JSON_VALUES,
    },
)


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    with running_gateway(Path(tmp_path_factory.mktemp("fuzz"))) as pair:
        yield pair


class Oracle:
    """The validators, applied again to what the upstream received."""

    def __init__(self) -> None:
        self.definitions = FhirDefinitions.load_r4()
        self.search = SearchDefinitions.load_r4({})

    def __repr__(self) -> str:
        return "Oracle()"


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle()


def _recheck(
    seen: dict[str, Any], oracle: tuple[FhirDefinitions, SearchDefinitions]
) -> None:
    """The upstream's view must pass the same rules the gateway applies."""
    definitions, search = oracle.definitions, oracle.search
    path = canonical_path(seen["path"].encode(), max_bytes=4096)
    segments = path.split("/")[2:]
    query = parse_query(seen["query"].encode(), max_bytes=4096)
    if segments == ["metadata"]:
        assert {n for n, _ in query} <= {
            "mode",
            "_format",
            "_pretty",
            "_summary",
            "_elements",
        }
    elif seen["method"] == "GET" and len(segments) == 1:
        search.check(segments[0], query)
    if seen["body"] and seen["method"] in ("POST", "PUT") and "_search" not in path:
        resource = loads_strict(seen["body"])
        definitions.check(resource)
        assert resource["resourceType"] == segments[0]


@BUDGET
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    segments=st.lists(SEGMENTS, min_size=1, max_size=4),
    query=st.lists(st.tuples(NAMES, VALUES), max_size=4),
    resource=RESOURCES,
    raw_body=st.sampled_from([None, b"", b"{", b'{"a":1,"a":2}', b"[" * 300]),
    content_type=st.sampled_from(
        [JSON, "application/json", "text/plain", "application/xml"]
    ),
)
def test_fuzz_no_5xx_and_nothing_unvalidated_upstream(
    pair: tuple[GatewayUnderTest, StandIn],
    oracle: Oracle,
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    resource: dict[str, Any],
    raw_body: bytes | None,
    content_type: str,
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    target = "/fhir/" + "/".join(segments)
    if query:
        target += "?" + "&".join(
            f"{name}={quote(value, safe=',:|/')}" for name, value in query
        )
    body = None
    if method in ("POST", "PUT"):
        body = json.dumps(resource).encode() if raw_body is None else raw_body
    headers = {
        "Accept": JSON,
        "Content-Type": content_type,
        "Authorization": "Bearer " + standin.token({"scope": "system/*.cruds"}),
    }
    status, _ = send_raw(gw, method, target, headers, body)
    assert status < 500
    for seen in gw.recorder.requests:
        _recheck({**seen, "path": urlsplit(seen["path"]).path}, oracle)
    FORWARDED.append(len(gw.recorder.requests))


def test_fuzz_exercised_both_outcomes() -> None:
    # Runs after the property (file order): the budget must have produced both
    # refused and forwarded requests, or the property above proved nothing.
    assert len(FORWARDED) >= 100
    assert 0 < sum(FORWARDED) < len(FORWARDED)
