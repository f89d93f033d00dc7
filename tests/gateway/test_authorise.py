"""Authorisation through the whole gateway: FHIR-01, FHIR-03, FHIR-06, BODY-06.

Every refusal asserts that the upstream saw nothing; the egress tests use an
upstream that misbehaves on purpose (it returns other patients' data).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import StandIn, gateway_toml, issuer_app

FHIR = {"Accept": "application/fhir+json"}
JSON = {**FHIR, "Content-Type": "application/fhir+json"}


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def obs(patient: str, mode: str = "match") -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Observation",
            "id": f"obs-{patient}",
            "status": "final",
            "code": {"text": "blood pressure"},
            "subject": ref(f"Patient/{patient}"),
        },
        "search": {"mode": mode},
    }


@dataclass
class Canned:
    """An upstream answering from a table, recording what it was sent."""

    replies: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": dict(request.headers),
                    "body": await request.body(),
                }
            )
            reply = self.replies.get(request.url.path.removeprefix("/fhir"))
            if request.url.path.endswith("-404"):
                outcome = {
                    "resourceType": "OperationOutcome",
                    "issue": [{"code": "not-found"}],
                }
                return JSONResponse(outcome, 404, headers={"etag": 'W/"1"'})
            if reply is None:
                reply = {"resourceType": "Bundle", "type": "searchset", "entry": []}
            return JSONResponse(reply, media_type="application/fhir+json")

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
        return Starlette(routes=[Route("/{path:path}", anything, methods=methods)])


@dataclass
class Under:
    client: httpx.Client
    upstream: Canned
    standin: StandIn
    audit: Path

    def bearer(self, **claims: Any) -> dict[str, str]:
        return {**FHIR, "Authorization": f"Bearer {self.standin.token(claims)}"}


@contextmanager
def running(standin: StandIn, tmp: Path, authorise: str) -> Iterator[Under]:
    canned = Canned()
    with ThreadServer(canned.app()) as upstream:
        text = gateway_toml(standin.url, upstream.url, tmp, authorise=authorise)
        settings = parse_settings(text, source="test")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            yield Under(client, canned, standin, tmp / "audit.jsonl")


@pytest.fixture(scope="module")
def issuer() -> Iterator[StandIn]:
    # One stand-in issuer and gateway per module keeps these tests quick; each
    # test gets the upstream's table and recording cleared.
    key = ECKey.generate_key("P-256", auto_kid=True)
    hits: list[int] = []
    port = free_port()
    with ThreadServer(issuer_app(key, hits, port), port) as server:
        yield StandIn(key, server.url, hits)


def _fresh(under: Under) -> Under:
    under.upstream.requests.clear()
    under.upstream.replies.clear()
    return under


@pytest.fixture(scope="module")
def shared_gw(
    issuer: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Under]:
    tmp = tmp_path_factory.mktemp("gw")
    with running(issuer, tmp, 'client_credentials = "allow"') as under:
        yield under


@pytest.fixture
def gw(shared_gw: Under) -> Under:
    return _fresh(shared_gw)


@pytest.fixture
def strict_gw(strict_shared: Under) -> Under:
    return _fresh(strict_shared)


@pytest.fixture(scope="module")
def strict_shared(
    issuer: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Under]:
    """The default grant policy, plus two named route policies."""
    policy = """
[[authorise.routes]]
name = "no-client-credentials-writes"
interactions = ["create", "update", "delete"]
client_credentials = "forbid"
[[authorise.routes]]
name = "consent-admin"
resource_types = ["Consent"]
required_scopes = ["consent-admin"]
"""
    with running(issuer, tmp_path_factory.mktemp("strict"), policy) as under:
        yield under


PATIENT_A = {"scope": "patient/*.rs", "patient": "pat-A", "sub": "user-1", "acr": "3"}


def refused(under: Under, response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert under.upstream.requests == []


# FHIR-01 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "_id=pat-A&_revinclude=Observation:focus",
        "_id=pat-A&_revinclude=Observation:subject",
        "_revinclude=Observation:performer",
        "_id=pat-A&_revinclude:iterate=Observation:focus",
    ],
)
def test_fhir01_revinclude_returns_only_the_patients_compartment(
    gw: Under, query: str
) -> None:
    gw.upstream.replies["/Patient"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "pat-A"},
                "search": {"mode": "match"},
            },
            obs("pat-A", "include"),
            obs("pat-B", "include"),
        ],
    }
    response = gw.client.get(f"/fhir/Patient?{query}", headers=gw.bearer(**PATIENT_A))
    assert response.status_code == 200
    assert "pat-B" not in response.text
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [
        "pat-A",
        "obs-pat-A",
    ]
    assert "_id=pat-A" in gw.upstream.requests[0]["query"]


def test_fhir01_upstream_ignoring_the_pin_is_refused(gw: Under) -> None:
    gw.upstream.replies["/Observation"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [obs("pat-A"), obs("pat-B")],
    }
    response = gw.client.get("/fhir/Observation", headers=gw.bearer(**PATIENT_A))
    assert response.status_code == 403
    assert "pat-B" not in response.text
    assert unquote(gw.upstream.requests[0]["query"]) == "subject=Patient/pat-A"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fhir01_read_of_another_patients_resource_looks_absent(
    gw: Under, method: str
) -> None:
    gw.upstream.replies["/Observation/o1"] = obs("pat-B")["resource"]
    gw.upstream.replies["/Observation/o2"] = obs("pat-A")["resource"]
    headers = gw.bearer(**PATIENT_A)
    hidden = gw.client.request(method, "/fhir/Observation/o1", headers=headers)
    assert hidden.status_code == 404
    assert "pat-B" not in hidden.text
    shown = gw.client.request(method, "/fhir/Observation/o2", headers=headers)
    assert shown.status_code == 200
    assert (shown.content == b"") is (method == "HEAD")
    assert [r["method"] for r in gw.upstream.requests] == ["GET", "GET"]


# BODY-06 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "patient=pat-A,pat-B",
        "patient=pat-B,pat-A",
        "patient=pat-A&patient=pat-B",
        "patient=Patient/pat-B",
        "patient%3APatient=pat-B",
        "subject=Patient/pat-B",
        "subject:Patient=pat-B",
        "subject=pat-B",
        "patient=https://other.example/fhir/Patient/pat-B",
        "patient.identifier=https://standards.digital.health.nz/ns/nhi-id|ZAC5361",
        "patient:missing=true",
        "performer=Patient/pat-B",
    ],
)
def test_body06_every_patient_value_is_authorised(gw: Under, query: str) -> None:
    response = gw.client.get(
        f"/fhir/Observation?{query}", headers=gw.bearer(**PATIENT_A)
    )
    refused(gw, response, 403)


def test_body06_search_post_form_values_are_authorised(gw: Under) -> None:
    response = gw.client.post(
        "/fhir/Observation/_search?patient=pat-A",
        content=b"patient=pat-B",
        headers={
            **gw.bearer(**PATIENT_A),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    refused(gw, response, 403)
    allowed = gw.client.post(
        "/fhir/Observation/_search",
        content=b"code=1",
        headers={
            **gw.bearer(**PATIENT_A),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert allowed.status_code == 200
    sent = gw.upstream.requests[0]
    assert sent["body"] == b"subject=Patient%2Fpat-A&code=1"
    assert sent["query"] == ""


def test_patient_scope_read_of_another_patient_is_refused_before_upstream(
    gw: Under,
) -> None:
    for target in (
        "/fhir/Patient/pat-B",
        "/fhir/Patient/nobody",
        "/fhir/Patient/pat-B/_history",
    ):
        response = gw.client.get(target, headers=gw.bearer(**PATIENT_A))
        refused(gw, response, 403)


# FHIR-06 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "claims"),
    [
        ("GET", "/fhir/_history", PATIENT_A),
        ("GET", "/fhir/_history", {"scope": "user/*.rs", "sub": "u", "acr": "3"}),
        ("GET", "/fhir?_type=Observation", PATIENT_A),
        ("GET", "/fhir", {"scope": "user/*.*", "sub": "u", "acr": "3"}),
        ("POST", "/fhir/_search", PATIENT_A),
        ("GET", "/fhir/Observation/_history", PATIENT_A),
        ("GET", "/fhir/_history", {"scope": "system/Patient.rs"}),
    ],
)
def test_fhir06_system_level_needs_a_system_scope(
    gw: Under, method: str, target: str, claims: dict[str, Any]
) -> None:
    headers = {
        **gw.bearer(**claims),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = gw.client.request(method, target, headers=headers)
    refused(gw, response, 403)


def test_fhir06_system_scope_may_search_the_system(gw: Under) -> None:
    response = gw.client.get("/fhir/_history", headers=gw.bearer(scope="system/*.rs"))
    assert response.status_code == 200
    assert gw.upstream.requests[0]["path"] == "/fhir/_history"


# FHIR-03 -------------------------------------------------------------------


def bundle(
    kind: str, *entries: tuple[str, str] | tuple[str, str, dict[str, Any]]
) -> dict[str, Any]:
    items = []
    for entry in entries:
        item: dict[str, Any] = {"request": {"method": entry[0], "url": entry[1]}}
        if len(entry) == 3:
            item["resource"] = entry[2]
        items.append(item)
    return {"resourceType": "Bundle", "type": kind, "entry": items}


@pytest.mark.parametrize("kind", ["batch", "transaction"])
@pytest.mark.parametrize(
    "entries",
    [
        [("GET", "Observation?patient=pat-B")],
        [("GET", "Patient/pat-A"), ("GET", "Observation?patient=pat-B")],
        [("GET", "Observation?subject=Patient/pat-B")],
        [("GET", "Observation?patient=pat-A,pat-B")],
        [("GET", "Patient/pat-B")],
        [("GET", "_history")],
        [("GET", "Practitioner/p1")],
        [("POST", "Observation", obs("pat-B")["resource"])],
        [("DELETE", "Observation/o1")],
        [("GET", "https://evil.example/fhir/Observation")],
        [("POST", "", {"resourceType": "Bundle", "type": "batch"})],
        [("GET", "Patient/pat-A/$everything")],
        [("GET", "Observation?patient=pat%2DB")],
        [("GET", "Observation%3Fpatient=pat-B")],
        [("GET", "Observation\u00e9?patient=pat-B")],
        [("GET", "Observation?patient=pat-A#x")],
        [("GET", "/Observation?patient=pat-B")],
        [("GET", "Patient/../Observation?patient=pat-B")],
        [("PUT", "Observation?patient=pat-B", obs("pat-B")["resource"])],
    ],
)
def test_fhir03_each_entry_is_authorised_as_standalone(
    gw: Under, kind: str, entries: list[Any]
) -> None:
    headers = {**gw.bearer(**{**PATIENT_A, "scope": "patient/*.cruds"}), **JSON}
    response = gw.client.post("/fhir", json=bundle(kind, *entries), headers=headers)
    assert response.status_code in (400, 403, 404, 405)
    refused(gw, response, response.status_code)


def test_fhir03_system_token_needs_scope_for_every_entry(gw: Under) -> None:
    headers = {**gw.bearer(scope="system/Patient.rs"), **JSON}
    body = bundle("batch", ("GET", "Patient/p1"), ("GET", "Observation?code=1"))
    refused(gw, gw.client.post("/fhir", json=body, headers=headers), 403)


def test_fhir03_allowed_bundle_is_forwarded_as_checked(gw: Under) -> None:
    gw.upstream.replies[""] = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": obs("pat-A")["resource"], "response": {"status": "200 OK"}},
            {"resource": obs("pat-B")["resource"], "response": {"status": "200 OK"}},
        ],
    }
    headers = {**gw.bearer(**PATIENT_A), **JSON}
    body = bundle("batch", ("GET", "Observation?code=1"), ("GET", "Observation/o9"))
    response = gw.client.post("/fhir", json=body, headers=headers)
    assert response.status_code == 200
    assert "pat-B" not in response.text
    assert response.json()["entry"][1]["response"]["status"] == "404 Not Found"
    sent = json.loads(gw.upstream.requests[0]["body"])
    assert (
        sent["entry"][0]["request"]["url"]
        == "Observation?code=1&subject=Patient%2Fpat-A"
    )


def test_fhir03_bundle_entry_identifiers_are_validated(gw: Under) -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "https://standards.digital.health.nz/ns/nhi-id",
                "value": "ZZZ0017",
            }
        ],
    }
    headers = {**gw.bearer(scope="system/*.cruds"), **JSON}
    response = gw.client.post(
        "/fhir",
        json=bundle("transaction", ("POST", "Patient", patient)),
        headers=headers,
    )
    refused(gw, response, 400)
    assert "ZZZ0017" not in response.text


# operations, patch, public routes ------------------------------------------

PARTICIPATE = "http://hl7.org/fhir/OperationDefinition/Resource-participate"


def test_operation_needs_its_operation_definition_scope(gw: Under) -> None:
    body = {"resourceType": "Parameters"}
    refused(
        gw,
        gw.client.post(
            "/fhir/$participate",
            json=body,
            headers={**gw.bearer(scope="system/*.*"), **JSON},
        ),
        403,
    )
    allowed = gw.client.post(
        "/fhir/$participate",
        json=body,
        headers={**gw.bearer(scope=PARTICIPATE), **JSON},
    )
    assert allowed.status_code == 200
    assert gw.upstream.requests[0]["path"] == "/fhir/$participate"


def test_patch_needs_update_and_a_patch_body(gw: Under) -> None:
    patch = b'[{"op":"replace","path":"/active","value":false}]'
    headers = {**FHIR, "Content-Type": "application/json-patch+json"}
    refused(
        gw,
        gw.client.patch(
            "/fhir/Patient/p1",
            content=patch,
            headers={**gw.bearer(scope="system/*.rs"), **headers},
        ),
        403,
    )
    bad = gw.client.patch(
        "/fhir/Patient/p1",
        content=b"[1,",
        headers={**gw.bearer(scope="system/*.u"), **headers},
    )
    refused(gw, bad, 400)
    allowed = gw.client.patch(
        "/fhir/Patient/p1",
        content=patch,
        headers={**gw.bearer(scope="system/*.u"), **headers},
    )
    assert allowed.status_code == 200
    assert gw.upstream.requests[0]["method"] == "PATCH"


def test_public_routes_are_only_those_listed(gw: Under) -> None:
    assert (
        gw.client.get("/fhir/.well-known/smart-configuration", headers=FHIR).status_code
        == 200
    )
    assert gw.client.get("/fhir/metadata", headers=FHIR).status_code == 200
    assert len(gw.upstream.requests) == 2
    assert gw.client.get("/fhir/Patient", headers=FHIR).status_code == 401
    assert gw.client.get("/fhir/_history", headers=FHIR).status_code == 401
    assert len(gw.upstream.requests) == 2


# grant policy, acr, Request-Context ----------------------------------------

SYSTEM_CONTEXT = {
    "userIdentifier": "svc",
    "userRole": "110150",
    "purposeOfUse": ["RECORDMGT"],
    "userFullName": "Sync Job",
    "orgIdentifier": "GQX042-A",
}


def context(value: dict[str, Any], *, pad: bool = True) -> str:
    text = base64.b64encode(json.dumps(value, indent=1).encode()).decode()
    return text if pad else text.rstrip("=")


def test_client_credentials_need_a_request_context_by_default(strict_gw: Under) -> None:
    response = strict_gw.client.get("/fhir/Patient", headers=strict_gw.bearer())
    refused(strict_gw, response, 400)
    assert response.json()["issue"][0]["code"] == "required"


@pytest.mark.parametrize("pad", [True, False])
def test_valid_request_context_is_forwarded_reencoded(
    strict_gw: Under, pad: bool
) -> None:
    raw = context(SYSTEM_CONTEXT, pad=pad)
    headers = {**strict_gw.bearer(), "Request-Context": raw}
    response = strict_gw.client.get("/fhir/Patient", headers=headers)
    assert response.status_code == 200
    forwarded = strict_gw.upstream.requests[0]["headers"]["request-context"]
    assert forwarded != raw
    assert json.loads(base64.b64decode(forwarded)) == SYSTEM_CONTEXT
    assert b"\n" not in base64.b64decode(forwarded)


@pytest.mark.parametrize(
    "value",
    [
        "not-base64!!",
        context({**SYSTEM_CONTEXT, "userIdentifier": "someone-else"}),
        context({**SYSTEM_CONTEXT, "orgIdentifier": "GQX042-B"}),
        context({**SYSTEM_CONTEXT, "purposeOfUse": "RECORDMGT"}),
        context({"userRole": "PROV"}),
    ],
)
def test_invalid_request_context_is_400_without_echo(
    strict_gw: Under, value: str
) -> None:
    response = strict_gw.client.get(
        "/fhir/Patient", headers={**strict_gw.bearer(), "Request-Context": value}
    )
    refused(strict_gw, response, 400)
    assert value[:12] not in response.text
    assert "someone-else" not in response.text


def test_repeated_request_context_is_refused(strict_gw: Under) -> None:
    value = context(SYSTEM_CONTEXT)
    response = strict_gw.client.get(
        "/fhir/Patient",
        headers=[
            *strict_gw.bearer().items(),
            ("Request-Context", value),
            ("Request-Context", value),
        ],
    )
    refused(strict_gw, response, 400)


def test_route_policy_forbids_client_credentials_writes(strict_gw: Under) -> None:
    headers = {
        **strict_gw.bearer(scope="system/*.cruds"),
        **JSON,
        "Request-Context": context(SYSTEM_CONTEXT),
    }
    response = strict_gw.client.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers=headers
    )
    refused(strict_gw, response, 403)


def test_route_policy_requires_raw_scopes(strict_gw: Under) -> None:
    rc = {"Request-Context": context(SYSTEM_CONTEXT)}
    refused(
        strict_gw,
        strict_gw.client.get("/fhir/Consent", headers={**strict_gw.bearer(), **rc}),
        403,
    )
    allowed = strict_gw.client.get(
        "/fhir/Consent",
        headers={**strict_gw.bearer(scope="system/*.rs consent-admin"), **rc},
    )
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"sub": "user-1", "acr": "3"}, 200),
        ({"sub": "user-1", "acr": "2"}, 403),
        ({"sub": "user-1"}, 403),
        ({"sub": "user-1", "acr": "urn:mace:incommon:iap:silver"}, 403),
        ({"sub": "svc", "gty": "client_credentials"}, 400),
        ({"sub": "user-1", "gty": "client_credentials"}, 400),
        ({"sub": "a1b2", "preferred_username": "service-account-svc"}, 400),
        ({"sub": "a1b2", "idtyp": "app"}, 400),
        ({"sub": "a1b2", "idtyp": "user", "acr": "3"}, 200),
    ],
)
def test_user_tokens_need_the_minimum_acr(
    strict_gw: Under, claims: dict[str, Any], status: int
) -> None:
    response = strict_gw.client.get("/fhir/Patient", headers=strict_gw.bearer(**claims))
    assert response.status_code == status
    if status != 200:
        refused(strict_gw, response, status)


def test_fhir03_conditional_create_needs_search_scope(gw: Under) -> None:
    entry = {
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": "identifier=x|1",
        },
        "resource": {"resourceType": "Patient"},
    }
    body = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    headers = {**gw.bearer(scope="system/Patient.c"), **JSON}
    refused(gw, gw.client.post("/fhir", json=body, headers=headers), 403)
    headers = {**gw.bearer(scope="system/Patient.cs"), **JSON}
    assert gw.client.post("/fhir", json=body, headers=headers).status_code == 200


def test_fhir03_patient_may_create_in_its_own_compartment(gw: Under) -> None:
    claims = {**PATIENT_A, "scope": "patient/Observation.c"}
    body = bundle("transaction", ("POST", "Observation", obs("pat-A")["resource"]))
    gw.upstream.replies[""] = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [],
    }
    response = gw.client.post(
        "/fhir", json=body, headers={**gw.bearer(**claims), **JSON}
    )
    assert response.status_code == 200
    assert len(gw.upstream.requests) == 1


def test_patient_create_outside_the_compartment_is_refused(gw: Under) -> None:
    claims = {**PATIENT_A, "scope": "patient/Observation.c"}
    headers = {**gw.bearer(**claims), **JSON}
    response = gw.client.post(
        "/fhir/Observation", json=obs("pat-B")["resource"], headers=headers
    )
    refused(gw, response, 403)


RF_TAG = (
    "https://fhir-ig.digital.health.nz/rheumatic-fever/CodeSystem/"
    "nz-rheumaticfever-codesystem|rf-nz"
)
RF_SCOPE = f"system/Appointment.crus?_tag={RF_TAG}"


def appointment(tag: str | None) -> dict[str, Any]:
    meta = (
        {"tag": [{"system": RF_TAG.split("|", maxsplit=1)[0], "code": tag}]}
        if tag
        else {}
    )
    return {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "participant": [{"actor": ref("Patient/pat-A"), "status": "accepted"}],
        "meta": meta,
    }


def test_tag_scope_read_shows_only_tagged_resources(gw: Under) -> None:
    gw.upstream.replies["/Appointment/a1"] = appointment("rf-nz")
    gw.upstream.replies["/Appointment/a2"] = appointment(None)
    headers = gw.bearer(scope=RF_SCOPE)
    assert gw.client.get("/fhir/Appointment/a1", headers=headers).status_code == 200
    hidden = gw.client.get("/fhir/Appointment/a2", headers=headers)
    assert hidden.status_code == 404
    assert "booked" not in hidden.text


def test_tag_scope_create_needs_the_tag_in_the_body(gw: Under) -> None:
    headers = {**gw.bearer(scope=RF_SCOPE), **JSON}
    untagged = gw.client.post(
        "/fhir/Appointment", json=appointment(None), headers=headers
    )
    refused(gw, untagged, 403)
    allowed = gw.client.post(
        "/fhir/Appointment", json=appointment("rf-nz"), headers=headers
    )
    assert allowed.status_code == 200
    assert len(gw.upstream.requests) == 1


def test_tag_scope_search_needs_the_tag_parameter(gw: Under) -> None:
    headers = gw.bearer(scope=RF_SCOPE)
    refused(gw, gw.client.get("/fhir/Appointment", headers=headers), 403)
    allowed = gw.client.get(
        "/fhir/Appointment", params={"_tag": RF_TAG}, headers=headers
    )
    assert allowed.status_code == 200


def test_tag_scope_reads_in_bundles_are_refused(gw: Under) -> None:
    headers = {**gw.bearer(scope=RF_SCOPE), **JSON}
    body = bundle("batch", ("GET", "Appointment/a1"))
    refused(gw, gw.client.post("/fhir", json=body, headers=headers), 403)
    create = bundle("transaction", ("POST", "Appointment", appointment("rf-nz")))
    assert gw.client.post("/fhir", json=create, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("scope", "status"),
    [
        ("https://gw.example/fhir/system/Patient.r", 200),
        ("https://api.hip.digital.health.nz/fhir/system/Patient.r", 403),
        ("https://gw.example/other/system/Patient.r", 403),
    ],
)
def test_url_prefixed_scopes_must_name_this_api(
    gw: Under, scope: str, status: int
) -> None:
    response = gw.client.get("/fhir/Patient/p1", headers=gw.bearer(scope=scope))
    assert response.status_code == status
    if status == 403:
        refused(gw, response, 403)


def test_request_context_fields_reach_the_trail(
    issuer: StandIn, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from kaitiaki.fhir.interactions import match_interaction
    from kaitiaki.gateway.exchange import Trail, _authorise
    from kaitiaki.nz.request_context import RequestContextReader
    from kaitiaki.request import CanonicalRequest
    from kaitiaki.tokens.jwt import Principal

    settings = parse_settings(
        gateway_toml(issuer.url, "http://127.0.0.1:9", tmp_path, authorise=""),
        source="t",
    )
    principal = Principal(
        issuer.url, "svc", "svc", "system/*.rs", None, 0, client_credentials=True
    )
    value = {**SYSTEM_CONTEXT, "facilityIdentifier": "FQX042-E"}
    request = CanonicalRequest(
        method="GET",
        path="/fhir/Patient",
        query=(),
        headers={"request-context": [context(value)]},
        client_address="127.0.0.1",
        correlation_id="c",
    )
    trail = Trail(method="GET", client_address="127.0.0.1")
    contexts = RequestContextReader(settings.authorise.context)
    gateway: Any = SimpleNamespace(settings=settings, contexts=contexts)
    access, _ = _authorise(
        gateway, principal, match_interaction("GET", "/Patient"), request, trail
    )
    assert (trail.organisation, trail.facility) == ("GQX042-A", "FQX042-E")
    assert trail.purpose_of_use == "RECORDMGT"
    assert access.request_context is not None


def test_hidden_and_absent_resources_get_the_same_reply(gw: Under) -> None:
    gw.upstream.replies["/Observation/o1"] = obs("pat-B")["resource"]
    headers = gw.bearer(**PATIENT_A)
    hidden = gw.client.get("/fhir/Observation/o1", headers=headers)
    absent = gw.client.get("/fhir/Observation/boom-404", headers=headers)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.content == absent.content
    drop = {"date", "x-correlation-id"}
    assert {k for k in hidden.headers if k not in drop} == {
        k for k in absent.headers if k not in drop
    }


def test_patient_everything_returns_only_the_compartment(gw: Under) -> None:
    gw.upstream.replies["/Patient/pat-A/$everything"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "pat-A"}},
            obs("pat-A"),
            obs("pat-B"),
        ],
    }
    scope = "patient/*.rs http://hl7.org/fhir/OperationDefinition/Patient-everything"
    headers = gw.bearer(**{**PATIENT_A, "scope": scope})
    response = gw.client.get("/fhir/Patient/pat-A/$everything", headers=headers)
    assert response.status_code == 200
    assert "pat-B" not in response.text
    refused_other = gw.client.get("/fhir/Patient/pat-B/$everything", headers=headers)
    assert refused_other.status_code == 403
    assert len(gw.upstream.requests) == 1


def test_refusals_are_audited_without_the_request_context(strict_gw: Under) -> None:
    value = context({**SYSTEM_CONTEXT, "userFullName": "Secret Person Name"})
    headers = {
        **strict_gw.bearer(scope="system/Observation.rs"),
        "Request-Context": value,
    }
    strict_gw.client.get("/fhir/Patient", headers=headers)
    body = bundle("batch", ("GET", "Observation?code=1"), ("GET", "Patient/p1"))
    strict_gw.client.post("/fhir", json=body, headers={**headers, **JSON})
    events = [json.loads(line) for line in strict_gw.audit.read_text().splitlines()]
    last = events[-2:]
    assert [(e["status"], e["refusal_step"]) for e in last] == [
        (403, "authorise"),
        (403, "authorise"),
    ]
    assert last[1]["refusal_code"].startswith("bundle_entry_")
    text = strict_gw.audit.read_text()
    assert "Secret Person Name" not in text
    assert value[:24] not in text
