"""Non-FHIR REST routes validated against an OpenAPI document, through the
real gateway; refusals in the standard's errors[] format, upstream untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaitiaki.errors import ConfigError, InvalidContent
from kaitiaki.rest.openapi import OpenApiDocument
from kaitiaki.settings import parse_settings
from tests.gateway.conftest import GatewayUnderTest, StandIn
from tests.gateway.validation_support import running_gateway

SPEC = Path(__file__).parent / "referrals.openapi.yaml"
# running_gateway fills in {upstream}.
REST_ROUTE = f"""
[[rest]]
prefix = "/api/v1"
openapi = "{SPEC}"
upstream = "{{upstream}}/rest"
"""
GOOD = {"nhi": "ZJM9397", "priority": 2}


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    tmp = Path(tmp_path_factory.mktemp("rest"))
    with running_gateway(tmp, REST_ROUTE) as pair:
        yield pair


@pytest.fixture
def gw(pair: tuple[GatewayUnderTest, StandIn]) -> GatewayUnderTest:
    pair[0].recorder.requests.clear()
    return pair[0]


def _auth(pair: tuple[GatewayUnderTest, StandIn], scope: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + pair[1].token({"scope": scope})}


READ = "referrals.read"
WRITE = "referrals.read referrals.write"
CONTEXT = {"Request-Context": "eyJ4Ijoxfq"}

CASES: list[tuple[str, str, str, dict[str, str], Any, int, str | None]] = [
    ("GET", "/api/v1/referrals?status=open&limit=5", READ, {}, None, 200, None),
    ("GET", "/api/v1/referrals?tags=a,b", READ, {}, None, 200, None),
    ("GET", "/api/v1/referrals?status=lost", READ, {}, None, 400, "status"),
    ("GET", "/api/v1/referrals?limit=0", READ, {}, None, 400, "limit"),
    ("GET", "/api/v1/referrals?limit=x", READ, {}, None, 400, "limit"),
    ("GET", "/api/v1/referrals?limit=1&limit=2", READ, {}, None, 400, "limit"),
    ("GET", "/api/v1/referrals?nickname=x", READ, {}, None, 400, "query[0]"),
    ("GET", "/api/v1/search?anything=x", READ, {}, None, 200, None),
    ("GET", "/api/v1/referrals/R1234", READ, CONTEXT, None, 200, None),
    ("GET", "/api/v1/referrals/R1234", READ, {}, None, 400, "Request-Context"),
    ("GET", "/api/v1/referrals/X1", READ, CONTEXT, None, 400, "id"),
    ("GET", "/api/v1/nothing", READ, {}, None, 404, None),
    ("DELETE", "/api/v1/referrals", READ, {}, None, 405, None),
    ("GET", "/api/v1/referrals", "other.scope", {}, None, 403, None),
    ("POST", "/api/v1/referrals", READ, {}, GOOD, 403, None),
    ("POST", "/api/v1/referrals", WRITE, {}, GOOD, 201, None),
    ("POST", "/api/v1/referrals", WRITE, {}, {**GOOD, "notes": None}, 201, None),
    ("POST", "/api/v1/referrals", WRITE, {}, {"nhi": "ZJM9397"}, 400, "body"),
    ("POST", "/api/v1/referrals", WRITE, {}, {**GOOD, "x": 1}, 400, "body"),
    (
        "POST",
        "/api/v1/referrals",
        WRITE,
        {},
        {**GOOD, "priority": 9},
        400,
        "body.priority",
    ),
    ("POST", "/api/v1/referrals", WRITE, {}, {**GOOD, "nhi": "zz"}, 400, "body.nhi"),
    (
        "POST",
        "/api/v1/referrals",
        WRITE,
        {},
        {**GOOD, "count": 2**60},
        400,
        "body.count",
    ),
    ("POST", "/api/v1/referrals", WRITE, {}, b'{"nhi":"a","nhi":"b"}', 400, None),
    ("POST", "/api/v1/referrals", WRITE, {}, b"", 400, "body"),
    (
        "POST",
        "/api/v1/referrals",
        WRITE,
        {"Content-Type": "text/plain"},
        b"x",
        415,
        None,
    ),
    (
        "GET",
        "/api/v1/referrals",
        "",
        {"Authorization": "Bearer x.y.z"},
        None,
        401,
        None,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "scope", "headers", "body", "status", "field"), CASES
)
def test_rest_route_is_validated(
    pair: tuple[GatewayUnderTest, StandIn],
    gw: GatewayUnderTest,
    method: str,
    path: str,
    scope: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    field: str | None,
) -> None:
    sent = {"Accept": "application/json", **_auth(pair, scope), **headers}
    content = (
        body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    )
    if content is not None:
        sent.setdefault("Content-Type", "application/json")
    response = gw.client.request(method, path, headers=sent, content=content)
    assert response.status_code == status, response.text
    if status >= 400:
        payload = response.json()
        assert payload["status"] == status
        assert payload["errors"][0]["code"] and payload["errors"][0]["description"]
        assert response.headers["content-type"].startswith("application/json")
        if field is not None:
            assert payload["errors"][0]["field"] == field
        assert "ZJM9397" not in response.text and "nickname" not in response.text
        assert gw.recorder.requests == []
    else:
        assert len(gw.recorder.requests) == 1
        sent = gw.recorder.requests[0]
        assert sent["path"].startswith("/rest/")
        assert "authorization" not in sent["headers"]
        if "Request-Context" in headers:
            assert sent["headers"]["request-context"] == headers["Request-Context"]


def test_openapi_document_invalid_is_refused_at_start() -> None:
    with pytest.raises(ConfigError):
        OpenApiDocument({"openapi": "3.0.3", "info": {}, "paths": {"x": 1}})


def test_openapi_31_document_is_supported() -> None:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/items/{n}": {
                "get": {
                    "parameters": [
                        {
                            "name": "n",
                            "in": "path",
                            "required": True,
                            "schema": {"type": ["integer"], "format": "int32"},
                        }
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    document = OpenApiDocument(spec)
    operation, values = document.match("GET", "/items/7")
    operation.check(values, (), {})
    with pytest.raises(InvalidContent):
        operation.check({"n": "x"}, (), {})
    with pytest.raises(InvalidContent):
        operation.check({"n": str(2**31)}, (), {})


def test_rest_prefix_must_not_overlap_the_fhir_base() -> None:
    toml = """
[gateway]
upstream = "http://127.0.0.1:1/fhir"
[auth]
issuer = "https://idp.example"
audience = "a"
[[rest]]
prefix = "/fhir/api"
openapi = "x.yaml"
upstream = "http://127.0.0.1:1/api"
"""
    with pytest.raises(ConfigError, match="overlaps fhir_base"):
        parse_settings(toml, source="test")


def test_rest_route_gives_its_concurrency_lease_back(tmp_path: Path) -> None:
    """A refused and a served request each give their concurrency lease back,
    and a request refused by scope uses none (it is authorised first)."""
    extra = "[limits.routes.operation]\nconcurrency = 1\n" + REST_ROUTE
    with running_gateway(tmp_path, extra) as (gw, standin):
        good = {
            "Authorization": "Bearer " + standin.token({"scope": "referrals.read"}),
            "Accept": "application/json",
        }
        bad = {**good, "Authorization": "Bearer " + standin.token({"scope": "x"})}
        assert gw.client.get("/api/v1/referrals", headers=bad).status_code == 403
        for _ in range(3):
            reply = gw.client.get("/api/v1/referrals", headers=good)
            assert reply.status_code == 200, reply.text
