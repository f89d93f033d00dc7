"""Property-based fuzzing of a REST route (fixed seed, bounded budget): no
5xx, and every request the counting upstream receives passes the OpenAPI
document again there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaitiaki.request import parse_query
from kaitiaki.rest.openapi import OpenApiDocument
from kaitiaki.strictjson import JsonLimits
from tests.gateway.conftest import GatewayUnderTest, StandIn
from tests.gateway.validation_support import running_gateway, send_raw

SPEC = Path(__file__).parent / "referrals.openapi.yaml"
FORWARDED: list[int] = []
BUDGET = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PATHS = st.sampled_from(
    ["/referrals", "/referrals/R1234", "/referrals/x", "/search", "/nothing", "/"]
)
NAMES = st.sampled_from(["status", "limit", "tags", "nickname", "id"])
VALUES = st.sampled_from(["open", "closed", "5", "0", "99", "a,b", "", "x", "-1"])
FIELDS = st.dictionaries(
    st.sampled_from(["nhi", "priority", "notes", "count", "extra"]),
    st.one_of(
        st.sampled_from(["ZJM9397", "zz", None, 3, 9, 2**60, True, [1], {}]),
        st.integers(),
        st.text(max_size=5),
    ),
    max_size=5,
)


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    extra = f"""
[[rest]]
prefix = "/api/v1"
openapi = "{SPEC}"
upstream = "{{upstream}}/rest"
"""
    with running_gateway(Path(tmp_path_factory.mktemp("restfuzz")), extra) as pair:
        yield pair


class Oracle:
    def __init__(self) -> None:
        self.document = OpenApiDocument.load(str(SPEC))

    def __repr__(self) -> str:
        return "Oracle()"

    def recheck(self, seen: dict[str, Any]) -> None:
        path = urlsplit(seen["path"]).path.removeprefix("/rest")
        operation, values = self.document.match(seen["method"], path)
        query = parse_query(seen["query"].encode(), max_bytes=4096)
        headers = {name: [value] for name, value in seen["headers"].items()}
        operation.check(values, query, headers)
        operation.check_body(
            seen["headers"].get("content-type"), seen["body"], JsonLimits()
        )


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle()


@BUDGET
@given(
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    path=PATHS,
    query=st.lists(st.tuples(NAMES, VALUES), max_size=3),
    body=FIELDS,
    context=st.booleans(),
)
def test_rest_fuzz_no_5xx_and_nothing_unvalidated_upstream(
    pair: tuple[GatewayUnderTest, StandIn],
    oracle: Oracle,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    body: dict[str, Any],
    context: bool,
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    target = "/api/v1" + path
    if query:
        target += "?" + "&".join(f"{n}={quote(v, safe=',')}" for n, v in query)
    token = standin.token({"scope": "referrals.read referrals.write"})
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
    if context:
        headers["Request-Context"] = "eyJ4IjoxfQ"
    raw = None
    if method == "POST":
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    status, text = send_raw(gw, method, target, headers, raw)
    assert status < 500
    if status >= 400:
        assert json.loads(text)["status"] == status
    for seen in gw.recorder.requests:
        oracle.recheck(seen)
    FORWARDED.append(len(gw.recorder.requests))


def test_rest_fuzz_exercised_both_outcomes() -> None:
    assert len(FORWARDED) >= 90
    assert 0 < sum(FORWARDED) < len(FORWARDED)
