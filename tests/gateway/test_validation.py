"""The validate step through the real gateway: FHIR structure, search
parameters, content types, compressed bodies and response validation.
Every refusal is asserted with the upstream having seen nothing."""

from __future__ import annotations

import gzip
import http.client
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.errors import ConfigError
from kaitiaki.gateway.metadata import load_validator
from kaitiaki.gateway.upstream import HttpUpstream
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer
from tests.gateway.conftest import GatewayUnderTest, StandIn, gateway_toml
from tests.gateway.validation_support import running_gateway

JSON = "application/fhir+json"
CAPABILITY = '[validation]\nsearch_parameters = "capability"\n'
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    extra = """
[validation]
extra_search_parameters = { Patient = ["iwi"] }
"""
    with running_gateway(Path(tmp_path_factory.mktemp("validate")), extra) as pair:
        yield pair


@pytest.fixture
def gw(pair: tuple[GatewayUnderTest, StandIn]) -> GatewayUnderTest:
    pair[0].recorder.requests.clear()
    return pair[0]


@pytest.fixture
def writer(pair: tuple[GatewayUnderTest, StandIn]) -> dict[str, str]:
    token = pair[1].token({"scope": "system/*.cruds"})
    return {"Authorization": f"Bearer {token}", "Accept": JSON}


def _outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]


BODIES = [
    ({**PATIENT, "nickname": "J"}, 400, "structure", "Patient"),
    ({**PATIENT, "gender": "F"}, 400, "value", "Patient.gender"),
    ({**PATIENT, "name": "Jamie"}, 400, "structure", "Patient.name"),
    ({**PATIENT, "multipleBirthInteger": 2**40}, 400, "value", None),
    ({**PATIENT, "extension": [{"valueString": "x"}]}, 400, "required", None),
    ({"resourceType": "Observation", "status": "final"}, 400, "invalid", None),
]


@pytest.mark.parametrize(("body", "status", "code", "expression"), BODIES)
def test_create_body_is_validated(
    gw: GatewayUnderTest,
    writer: dict[str, str],
    body: dict[str, Any],
    status: int,
    code: str,
    expression: str | None,
) -> None:
    response = gw.client.post(
        "/fhir/Patient",
        headers={**writer, "Content-Type": JSON},
        content=json.dumps(body).encode(),
    )
    issue = _outcome(response, status)
    assert issue["code"] == code
    if expression:
        assert issue["expression"] == [expression]
    assert "Jamie" not in response.text and "nickname" not in response.text
    assert gw.recorder.requests == []


def test_update_body_is_validated(gw: GatewayUnderTest, writer: dict[str, str]) -> None:
    response = gw.client.put(
        "/fhir/Patient/p1",
        headers={**writer, "Content-Type": JSON},
        content=json.dumps({**PATIENT, "birthDate": "yesterday"}).encode(),
    )
    assert _outcome(response, 400)["expression"] == ["Patient.birthDate"]
    assert gw.recorder.requests == []


def test_valid_create_is_forwarded(
    gw: GatewayUnderTest, writer: dict[str, str]
) -> None:
    response = gw.client.post(
        "/fhir/Patient",
        headers={**writer, "Content-Type": JSON},
        content=json.dumps(PATIENT).encode(),
    )
    assert response.status_code == 201
    assert json.loads(gw.recorder.requests[0]["body"]) == PATIENT


def test_unknown_resource_type_is_no_route(
    gw: GatewayUnderTest, writer: dict[str, str]
) -> None:
    for path in ("/fhir/Patients", "/fhir/Project", "/fhir/Nope/1"):
        _outcome(gw.client.get(path, headers=writer), 404)
    assert gw.recorder.requests == []


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("nickname=x", 400),
        ("family:fuzzy=x", 400),
        ("_summary=maybe", 400),
        ("_count=1&_count=2", 400),
        ("_include=Patient:nickname", 400),
        ("_has:Observation:code:status=final", 400),
        ("iwi=ngati", 200),  # operator-declared IG parameter
        ("family:exact=Smith&birthdate=ge1970&birthdate=le1980", 200),
    ],
)
def test_search_parameters_are_checked(
    gw: GatewayUnderTest, writer: dict[str, str], query: str, status: int
) -> None:
    response = gw.client.get(f"/fhir/Patient?{query}", headers=writer)
    assert response.status_code == status
    assert len(gw.recorder.requests) == (1 if status == 200 else 0)
    if status == 400:
        expression = response.json()["issue"][0]["expression"][0]
        assert expression.startswith("parameter[") or expression == "_count"
        assert "nickname" not in response.text


def test_post_search_body_parameters_are_checked(
    gw: GatewayUnderTest, writer: dict[str, str]
) -> None:
    response = gw.client.post(
        "/fhir/Patient/_search",
        headers={**writer, "Content-Type": "application/x-www-form-urlencoded"},
        content=b"nickname=x",
    )
    _outcome(response, 400)
    assert gw.recorder.requests == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", b'--x\r\n\r\n{"resourceType":"Patient"}'),
        ("application/fhir+xml", b'<Patient xmlns="http://hl7.org/fhir"/>'),
        (
            "application/xml",
            b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<Patient>&x;</Patient>",
        ),
        ("text/xml", b"<Patient/>"),
        ("application/x-www-form-urlencoded", b"resourceType=Patient"),
        ("application/fhir+json; charset=utf-16", b'{"resourceType":"Patient"}'),
    ],
)
def test_non_json_bodies_are_415(
    gw: GatewayUnderTest, writer: dict[str, str], content_type: str, body: bytes
) -> None:
    response = gw.client.post(
        "/fhir/Patient", headers={**writer, "Content-Type": content_type}, content=body
    )
    _outcome(response, 415)
    assert gw.recorder.requests == []


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "GZIP", "gzip, gzip"])
def test_compressed_bodies_are_415_by_default(
    gw: GatewayUnderTest, writer: dict[str, str], coding: str
) -> None:
    response = gw.client.post(
        "/fhir/Patient",
        headers={**writer, "Content-Type": JSON, "Content-Encoding": coding},
        content=gzip.compress(json.dumps(PATIENT).encode()),
    )
    _outcome(response, 415)
    assert gw.recorder.requests == []


@pytest.fixture(scope="module")
def inflating(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    extra = """
[validation]
compressed_bodies = true
max_inflated_bytes = 65536
max_inflate_ratio = 50
"""
    with running_gateway(Path(tmp_path_factory.mktemp("inflate")), extra) as pair:
        yield pair


def _post_compressed(
    pair: tuple[GatewayUnderTest, StandIn], body: bytes, coding: str, token: bool
) -> Any:
    gw, standin = pair
    gw.recorder.requests.clear()
    headers = {"Accept": JSON, "Content-Type": JSON, "Content-Encoding": coding}
    if token:
        headers["Authorization"] = "Bearer " + standin.token({"scope": "system/*.c"})
    return gw.client.post("/fhir/Patient", headers=headers, content=body)


def _padded_patient(size: int) -> bytes:
    return json.dumps({**PATIENT, "id": "p" + "1" * 8, "language": "x" * size}).encode()


@pytest.mark.parametrize(
    ("body", "coding", "token", "status"),
    [
        (gzip.compress(json.dumps(PATIENT).encode()), "gzip", True, 201),
        (zlib.compress(json.dumps(PATIENT).encode()), "deflate", True, 201),
        # BODY-05: a bomb is refused once the inflated bytes pass a cap ...
        (gzip.compress(b"[" + b" " * 10_000_000 + b"]"), "gzip", True, 413),
        (gzip.compress(_padded_patient(60_000)), "gzip", True, 413),
        # ... and nothing is inflated before authentication.
        (gzip.compress(b"[" + b" " * 10_000_000 + b"]"), "gzip", False, 401),
        (b"\x1f\x8bnot gzip", "gzip", True, 400),
        (gzip.compress(json.dumps(PATIENT).encode())[:-4], "gzip", True, 400),
        (gzip.compress(json.dumps(PATIENT).encode()) + b"xx", "gzip", True, 400),
        (gzip.compress(json.dumps(PATIENT).encode()), "br", True, 415),
    ],
)
def test_compressed_bodies_when_enabled(
    inflating: tuple[GatewayUnderTest, StandIn],
    body: bytes,
    coding: str,
    token: bool,
    status: int,
) -> None:
    response = _post_compressed(inflating, body, coding, token)
    assert response.status_code == status, response.text
    sent = inflating[0].recorder.requests
    if status == 201:
        assert json.loads(sent[0]["body"]) == PATIENT
        assert "content-encoding" not in sent[0]["headers"]
    else:
        assert sent == []


def _bad_upstream() -> Starlette:
    async def reply(request: Request) -> Response:
        if request.url.path.endswith("/good"):
            return JSONResponse(PATIENT, media_type=JSON)
        return JSONResponse({**PATIENT, "gender": "F", "secret": 1}, media_type=JSON)

    return Starlette(routes=[Route("/{path:path}", reply)])


@pytest.mark.parametrize(
    ("mode", "status"), [("block", 502), ("log", 200), ("off", 200)]
)
def test_response_validation_modes(
    tmp_path: Path, mode: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    extra = f'[validation]\nresponse_validation = "{mode}"\n'
    with running_gateway(tmp_path, extra, upstream=_bad_upstream()) as (gw, standin):
        headers = {"Accept": JSON, "Authorization": "Bearer " + standin.token()}
        bad = gw.client.get("/fhir/Patient/bad", headers=headers)
        good = gw.client.get("/fhir/Patient/good", headers=headers)
    assert bad.status_code == status
    assert good.status_code == 200
    if mode == "block":
        assert bad.json()["resourceType"] == "OperationOutcome"
        assert "secret" not in bad.text
    logged = "failed validation" in caplog.text
    assert logged == (mode != "off")


def _capability_upstream(statement: dict[str, Any] | None) -> Starlette:
    async def reply(request: Request) -> Response:
        if request.url.path.endswith("/metadata"):
            if statement is None:
                return Response("down", 503)
            return JSONResponse(statement, media_type=JSON)
        return JSONResponse({"resourceType": "Bundle", "type": "searchset"})

    return Starlette(routes=[Route("/{path:path}", reply)])


def test_search_parameters_from_upstream_capability_statement(tmp_path: Path) -> None:
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Patient",
                        "searchParam": [{"name": "iwi", "type": "token"}],
                    }
                ],
            }
        ],
    }
    upstream = _capability_upstream(statement)
    with running_gateway(tmp_path, CAPABILITY, upstream=upstream) as (gw, standin):
        headers = {"Accept": JSON, "Authorization": "Bearer " + standin.token()}
        assert gw.client.get("/fhir/Patient?iwi=x", headers=headers).status_code == 200
        assert (
            gw.client.get("/fhir/Patient?family=x", headers=headers).status_code == 400
        )


@pytest.mark.anyio
@pytest.mark.parametrize("statement", [None, {"resourceType": "Patient"}])
async def test_capability_mode_refuses_to_start_without_metadata(
    tmp_path: Path, statement: dict[str, Any] | None
) -> None:
    toml = gateway_toml("https://idp.example", "UP", tmp_path, CAPABILITY)
    with ThreadServer(_capability_upstream(statement)) as upstream:
        settings = parse_settings(toml.replace("UP", upstream.url), source="test")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ConfigError):
                await load_validator(settings, HttpUpstream(session))


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"Accept": "application/xml"}, "", 406),
        ({"Accept": "text/html, application/xhtml+xml"}, "", 406),
        ({"Accept": JSON}, "?_format=xml", 406),
        ({"Accept": JSON}, "?_format=application/fhir%2Bxml", 406),
        ({"Accept": "application/fhir+json;q=0.9, */*;q=0.1"}, "", 200),
        ({"Accept": JSON}, "?_format=json", 200),
        # q=0 means "not acceptable" (RFC 9110 section 12.4.2).
        ({"Accept": "application/fhir+json;q=0"}, "", 406),
        ({"Accept": "application/fhir+json; q=0.000, application/json;q=0"}, "", 406),
        ({"Accept": "*/*, application/fhir+json;q=0, application/json;q=0"}, "", 406),
        ({"Accept": "text/html, */*;q=0"}, "", 406),
        ({"Accept": "application/fhir+json, */*;q=0"}, "", 200),
        ({"Accept": "application/fhir+json;q=0, application/json"}, "", 200),
        # Another FHIR version than R4 (FHIR R4 section 3.1.0.1.4: 406).
        ({"Accept": "application/fhir+json; fhirVersion=3.0"}, "", 406),
        ({"Accept": "application/fhir+json; fhirVersion=4.0"}, "", 200),
    ],
)
def test_accept_negotiation(
    pair: tuple[GatewayUnderTest, StandIn],
    gw: GatewayUnderTest,
    headers: dict[str, str],
    query: str,
    status: int,
) -> None:
    token = {"Authorization": "Bearer " + pair[1].token()}
    response = gw.client.get(f"/fhir/Patient{query}", headers={**token, **headers})
    assert response.status_code == status
    if status == 406:
        assert response.headers["link"].startswith("<https://gw.example/fhir/metadata>")
        assert gw.recorder.requests == []


def test_missing_accept_is_400_when_required(tmp_path: Path) -> None:
    extra = "[validation]\nrequire_accept = true\n"
    with running_gateway(tmp_path, extra) as (gw, standin):
        token = {"Authorization": "Bearer " + standin.token()}
        # http.client adds no Accept of its own (httpx would send */*).
        url = gw.client.base_url
        connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
        connection.request("GET", "/fhir/Patient", headers=token)
        missing = connection.getresponse()
        body = json.loads(missing.read())
        connection.close()
        present = gw.client.get("/fhir/Patient", headers={**token, "Accept": JSON})
        assert missing.status == 400
        assert body["issue"][0]["expression"] == ["Accept"]
        assert present.status_code == 200
        assert len(gw.recorder.requests) == 1


def test_nhi_patient_ids_through_the_gateway(tmp_path: Path) -> None:
    extra = "[validation]\nnhi_patient_ids = true\n"
    with running_gateway(tmp_path, extra) as (gw, standin):
        headers = {"Accept": JSON, "Authorization": "Bearer " + standin.token()}
        assert (
            gw.client.get("/fhir/Patient/ZJM9398", headers=headers).status_code == 400
        )
        bad = gw.client.get("/fhir/Coverage?beneficiary=ZAA0793", headers=headers)
        assert bad.status_code == 400
        assert "ZAA0793" not in bad.text
        assert gw.recorder.requests == []
        assert (
            gw.client.get("/fhir/Patient/ZJM9397", headers=headers).status_code == 200
        )
        assert len(gw.recorder.requests) == 1
