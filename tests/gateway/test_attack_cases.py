"""The GW-* and BODY-* rows of ../shared/cases/attacks.md, each in several
spellings, through the real gateway: refused with the expected status, one
audit event each, and nothing reaches the upstream. (HRS-* rows are in
test_framing.py: they need raw sockets.)"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import GatewayUnderTest, StandIn
from tests.gateway.validation_support import running_gateway, send_raw

JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    with running_gateway(Path(tmp_path_factory.mktemp("attacks"))) as pair:
        yield pair


NO_TOKEN = {"Accept": JSON}

# (case, target, extra headers, expected statuses) - no token, as in the file.
PATHS = [
    ("GW-01", "/fhir/metadata/../Patient/pat-B", {}, {400, 401}),
    ("GW-01", "/fhir/metadata/%2e%2e/Patient/pat-B", {}, {400}),
    ("GW-01", "/fhir/metadata/%2E%2E/Patient/pat-B", {}, {400}),
    ("GW-01", "/fhir/metadata/..%2fPatient/pat-B", {}, {400}),
    ("GW-01", "/fhir/./Patient/pat-B", {}, {400}),
    ("GW-01", "/fhir/Patient/pat-A/../pat-B", {}, {400}),
    ("GW-02", "/fhir//$export", {}, {400}),
    ("GW-02", "/fhir/Patient%2Fpat-B", {}, {400}),
    ("GW-02", "/fhir/Patient%2fpat-B", {}, {400}),
    ("GW-02", "/fhir/Patient%5Cpat-B", {}, {400}),
    ("GW-02", "/fhir/Patient\\pat-B", {}, {400}),
    ("GW-02", "/fhir/Patient;jsessionid=1/pat-B", {}, {400}),
    ("GW-02", "/fhir/Patient/pat-B%00", {}, {400}),
    ("GW-02", "/fhir/Patient/%252e%252e", {}, {400}),
    ("GW-05", "/FHIR/Patient/pat-B", {}, {404}),
    ("GW-05", "/Fhir/Patient/pat-B", {}, {404}),
    ("GW-05", "/fhir/patient/pat-B", {}, {404}),
    ("GW-05", "/fhir/PATIENT/pat-B", {}, {404}),
    ("GW-05", "/fhir/Patient/pat-B/", {}, {400}),
    ("GW-07", "/fhir/Patient", {"X-Forwarded-Uri": "/fhir/metadata"}, {401}),
    ("GW-07", "/fhir/Patient", {"X-Original-URL": "/fhir/metadata"}, {400, 401}),
    ("GW-07", "/fhir/Patient", {"X-Rewrite-URL": "/fhir/metadata"}, {400, 401}),
    ("GW-10", "/fhir/Patient", {"X-Real-IP": "127.0.0.1"}, {401}),
    ("GW-10", "/fhir/Patient", {"X-Forwarded-For": "127.0.0.1"}, {401}),
    ("GW-10", "/fhir/Patient", {"Forwarded": "for=127.0.0.1"}, {401}),
]


@pytest.mark.parametrize(
    ("case", "target", "headers", "statuses"),
    PATHS,
    ids=[f"{row[0]} {row[1]} {sorted(row[2])}" for row in PATHS],
)
def test_path_and_header_attacks_without_token(
    pair: tuple[GatewayUnderTest, StandIn],
    case: str,
    target: str,
    headers: dict[str, str],
    statuses: set[int],
) -> None:
    gw = pair[0]
    gw.recorder.requests.clear()
    status, text = send_raw(gw, "GET", target, {**NO_TOKEN, **headers})
    assert status in statuses, (case, status)
    assert json.loads(text)["resourceType"] == "OperationOutcome"
    assert gw.recorder.requests == []
    assert "pat-B" not in text


@pytest.mark.parametrize(
    "header",
    [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "x-http-method-override",
    ],
)
def test_gw08_method_override_with_read_token(
    pair: tuple[GatewayUnderTest, StandIn], header: str
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    token = standin.token({"scope": "system/Patient.rs"})
    headers = {**NO_TOKEN, "Authorization": f"Bearer {token}", header: "DELETE"}
    status, _ = send_raw(gw, "GET", "/fhir/Patient/pat-A", headers)
    assert status == 400
    assert gw.recorder.requests == []


@pytest.mark.parametrize(
    "query",
    [
        "_method=DELETE",
        "%5Fmethod=DELETE",
        "_METHOD=delete",
        "_method=PUT&_method=DELETE",
        "x-http-method-override=DELETE",
        "X_HTTP_METHOD_OVERRIDE=DELETE",
        "x-method-override=DELETE",
        "__method=DELETE",
    ],
)
@pytest.mark.parametrize("path", ["/fhir/Patient/pat-A", "/fhir/Patient"])
def test_gw08_method_override_as_a_query_parameter(
    pair: tuple[GatewayUnderTest, StandIn], query: str, path: str
) -> None:
    # Frameworks (Rails, Laravel, Symfony) read the method from `_method`.
    gw, standin = pair
    gw.recorder.requests.clear()
    token = standin.token({"scope": "system/Patient.rs"})
    headers = {**NO_TOKEN, "Authorization": f"Bearer {token}"}
    status, text = send_raw(gw, "GET", f"{path}?{query}", headers)
    assert status == 400
    assert json.loads(text)["resourceType"] == "OperationOutcome"
    assert "DELETE" not in text and "delete" not in text
    assert gw.recorder.requests == []


@pytest.fixture(scope="module")
def lenient(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    extra = "[validation]\nallow_unknown_search_parameters = true\n"
    path = Path(tmp_path_factory.mktemp("lenient"))
    with running_gateway(path, extra) as pair:
        yield pair


@pytest.mark.parametrize(
    "form",
    ["_method=DELETE", "name=x&_METHOD=delete", "x-http-method-override=DELETE"],
)
def test_gw08_method_override_in_a_search_form_body(
    lenient: tuple[GatewayUnderTest, StandIn], form: str
) -> None:
    # A POST _search body is form-encoded: where Rails, Laravel and Symfony
    # look for `_method` first. Unknown search parameters being allowed must
    # not let it through to the upstream.
    gw, standin = lenient
    gw.recorder.requests.clear()
    token = standin.token({"scope": "system/Patient.rs"})
    headers = {
        **NO_TOKEN,
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, text = send_raw(gw, "POST", "/fhir/Patient/_search", headers, form.encode())
    assert status == 400, text
    assert json.loads(text)["resourceType"] == "OperationOutcome"
    assert "DELETE" not in text and "delete" not in text
    assert gw.recorder.requests == []
    assert gw.events()[-1]["refusal_code"] == "method_override"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("_format=json", 200),
        ("_summary=true&_elements=id,name", 200),
        ("_pretty=true", 200),
        ("foo=bar", 400),
        ("name=x", 400),
        ("_count=5", 400),
    ],
)
def test_a_read_takes_only_the_format_parameters(
    pair: tuple[GatewayUnderTest, StandIn], query: str, status: int
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    token = standin.token({"scope": "system/Patient.rs"})
    headers = {**NO_TOKEN, "Authorization": f"Bearer {token}"}
    got, text = send_raw(gw, "GET", f"/fhir/Patient/pat-A?{query}", headers)
    assert got == status, text
    assert len(gw.recorder.requests) == (1 if status == 200 else 0)


BODIES = [
    (
        "BODY-01",
        b'{"resourceType":"Observation","subject":{"reference":"Patient/pat-A"},'
        b'"subject":{"reference":"Patient/pat-B"}}',
        "Observation",
    ),
    ("BODY-01", b'{"resourceType":"Patient","resourceType":"Patient"}', "Patient"),
    (
        "BODY-01",
        b'{"resourceType":"Patient","name":[{"family":"A","family":"B"}]}',
        "Patient",
    ),
    ("BODY-01", b'{"resourceType":"Patient","id":"a","\\u0069d":"b"}', "Patient"),
    ("BODY-02", b"[" * 20000 + b"]" * 20000, "Patient"),
    ("BODY-02", b'{"a":' * 20000 + b"1" + b"}" * 20000, "Patient"),
    (
        "BODY-02",
        b'{"resourceType":"Patient","extension":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "Patient",
    ),
    ("BODY-02", b"[{" * 10000, "Patient"),
]


@pytest.mark.parametrize(("case", "body", "resource_type"), BODIES)
def test_body_attacks_are_400_before_validation(
    pair: tuple[GatewayUnderTest, StandIn], case: str, body: bytes, resource_type: str
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    token = standin.token({"scope": "system/*.cruds"})
    headers = {**NO_TOKEN, "Authorization": f"Bearer {token}", "Content-Type": JSON}
    status, text = send_raw(gw, "POST", f"/fhir/{resource_type}", headers, body)
    assert status == 400, case
    assert json.loads(text)["issue"][0]["code"] == "invalid"
    assert gw.recorder.requests == []


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(b"[" + b" " * 1_000_000 + b"]")),
        ("deflate", b"x\x9c" + b"\x00" * 100),
        ("x-gzip", gzip.compress(b"{}")),
        ("gzip, identity", gzip.compress(b"{}")),
        ("identity, gzip", gzip.compress(b"{}")),
    ],
)
def test_body05_compressed_bodies_are_415(
    pair: tuple[GatewayUnderTest, StandIn], coding: str, body: bytes
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    token = standin.token({"scope": "system/*.cruds"})
    headers = {
        **NO_TOKEN,
        "Authorization": f"Bearer {token}",
        "Content-Type": JSON,
        "Content-Encoding": coding,
    }
    status, _ = send_raw(gw, "POST", "/fhir/Patient", headers, body)
    assert status == 415
    assert gw.recorder.requests == []


def test_every_refusal_is_audited(pair: tuple[GatewayUnderTest, StandIn]) -> None:
    gw = pair[0]
    before = len(gw.events())
    send_raw(gw, "GET", "/fhir//$export", NO_TOKEN)
    send_raw(gw, "GET", "/FHIR/Patient/pat-B", NO_TOKEN)
    events = gw.events()[before:]
    assert [event["status"] for event in events] == [400, 404]
    assert all(event["outcome"] == "refused" for event in events)
