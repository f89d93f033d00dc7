"""The whole pipeline over real HTTP: refusals never reach the upstream."""

from __future__ import annotations

import http.client
import json

import pytest
from joserfc.jwk import ECKey

from tests.gateway.conftest import GatewayUnderTest, StandIn, b64, raw_token

FHIR = {"Accept": "application/fhir+json"}


def bearer(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}


def assert_refused(gw: GatewayUnderTest, response: object, status: int) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    outcome = response.json()  # type: ignore[attr-defined]
    assert outcome["resourceType"] == "OperationOutcome"
    assert gw.recorder.requests == []


def test_metadata_is_public(gateway: GatewayUnderTest) -> None:
    response = gateway.client.get("/fhir/metadata", headers=FHIR)
    assert response.status_code == 200
    assert len(gateway.recorder.requests) == 1


def test_search_with_token_is_forwarded_without_credentials(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = gateway.client.get(
        "/fhir/Patient?identifier=https://standards.digital.health.nz/ns/nhi-id|ZAC5361",
        headers=bearer(standin.token()),
    )
    assert response.status_code == 200
    sent = gateway.recorder.requests[0]
    assert sent["path"] == "/fhir/Patient"
    assert "authorization" not in sent["headers"]
    assert sent["headers"]["kaitiaki-client-id"] == "svc"
    assert sent["headers"]["x-forwarded-host"] == "gw.example"
    assert sent["headers"]["x-forwarded-proto"] == "https"
    assert sent["headers"]["x-forwarded-prefix"] == "/fhir"
    assert "set-cookie" not in response.headers
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers
    assert response.headers["cache-control"] == "no-store, private"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_create_rewrites_upstream_location(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    token = standin.token({"scope": "system/Patient.c"})
    response = gateway.client.post(
        "/fhir/Patient",
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
        content=b'{"resourceType":"Patient"}',
    )
    assert response.status_code == 201
    assert response.headers["location"] == (
        "https://gw.example/fhir/Patient/new/_history/1"
    )


@pytest.mark.parametrize("name", ["If-None-Exist", "if-none-exist"])
def test_a_conditional_create_is_refused_not_made_plain(
    gateway: GatewayUnderTest, standin: StandIn, name: str
) -> None:
    # If-None-Exist is not forwarded; dropping it would turn "create unless
    # it exists" into "create", and a retry into a duplicate patient.
    token = standin.token({"scope": "system/Patient.c"})
    response = gateway.client.post(
        "/fhir/Patient",
        headers={
            **bearer(token),
            "Content-Type": "application/fhir+json",
            name: "identifier=https://standards.digital.health.nz/ns/nhi-id|ZZZ0016",
        },
        content=b'{"resourceType":"Patient"}',
    )
    assert_refused(gateway, response, 400)
    assert response.json()["issue"][0]["code"] == "not-supported"
    assert "ZZZ0016" not in response.text
    assert gateway.events()[-1]["refusal_code"] == "conditional_create"


def test_no_token_gets_bearer_challenge(gateway: GatewayUnderTest) -> None:
    response = gateway.client.get("/fhir/Patient", headers=FHIR)
    assert_refused(gateway, response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer, DPoP algs=")
    assert response.json()["issue"][0]["code"] == "login"


def _forged(standin: StandIn) -> list[tuple[str, str]]:
    other = ECKey.generate_key("P-256", auto_kid=True)
    parts = standin.token().split(".")
    head = {"alg": "ES256", "typ": "at+jwt", "kid": standin.key.kid}
    return [
        ("wrong key", standin.token(key=other, header={"kid": standin.key.kid})),
        ("unknown kid", standin.token(key=other, header={"kid": other.kid})),
        ("expired", standin.token({"exp": 1000, "iat": 900})),
        ("exp as text", standin.token({"exp": "2099-01-01T00:00:00Z"})),
        ("no exp", standin.token(drop=("exp",))),
        ("no aud", standin.token(drop=("aud",))),
        ("wrong aud", standin.token({"aud": "billing-api"})),
        ("wrong iss", standin.token({"iss": "https://attacker.example"})),
        ("not yet valid", standin.token({"nbf": 9_999_999_999})),
        ("lifetime too long", standin.token({"exp": 9_999_999_999})),
        (
            "crit",
            raw_token(
                {**head, "crit": ["x-acme-mfa"], "x-acme-mfa": 1},
                standin.claims(),
                standin.key,
            ),
        ),
        ("crit empty", raw_token({**head, "crit": []}, standin.claims(), standin.key)),
        (
            "jwk header",
            raw_token(
                {**head, "jwk": other.as_dict(private=False)}, standin.claims(), other
            ),
        ),
        (
            "x5u",
            raw_token(
                {**head, "x5u": "https://attacker.example/c"},
                standin.claims(),
                standin.key,
            ),
        ),
        (
            "kid too long",
            raw_token({**head, "kid": "k" * 300}, standin.claims(), standin.key),
        ),
        ("alg None", _unsigned({**head, "alg": "None"}, standin.claims())),
        ("alg nOnE", _unsigned({**head, "alg": "nOnE"}, standin.claims())),
        ("jku", standin.token(header={"jku": "https://attacker.example/jwks.json"})),
        ("typ jwt", standin.token(header={"typ": "JWT"})),
        ("hs256 with public key", _hmac({**head, "alg": "HS256"}, standin)),
        (
            "alg none",
            parts[0].replace(
                parts[0], _b64({"alg": "none", "typ": "at+jwt", "kid": standin.key.kid})
            )
            + "."
            + parts[1]
            + ".",
        ),
        ("zero signature", ".".join(parts[:2]) + "." + _zero_signature()),
        ("garbage", "not-a-jwt"),
        ("oversized", "a" * 9000 + ".b.c"),
        ("duplicate claim", ".".join([parts[0], _dup_payload(standin), parts[2]])),
    ]


def _unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    return _b64(header) + "." + _b64(payload) + "."


def _hmac(header: dict[str, object], standin: StandIn) -> str:
    import hashlib
    import hmac

    secret = json.dumps(standin.key.as_dict(private=False)).encode()
    signing_input = _b64(header) + "." + _b64(standin.claims())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def _b64(value: dict[str, object]) -> str:
    import base64

    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _zero_signature() -> str:
    import base64

    return base64.urlsafe_b64encode(b"\0" * 64).rstrip(b"=").decode()


def _dup_payload(standin: StandIn) -> str:
    import base64

    text = f'{{"iss":"{standin.url}","iss":"x","aud":"https://gw.example/fhir"}}'
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_forged_tokens_are_all_refused(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    for name, token in _forged(standin):
        response = gateway.client.get("/fhir/Patient", headers=bearer(token))
        assert response.status_code == 401, name
        assert "invalid_token" in response.headers["www-authenticate"], name
        assert token[:40] not in response.text, name
    assert gateway.recorder.requests == []


def test_unknown_kids_cause_one_refetch_per_cooldown(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    gateway.client.get("/fhir/Patient", headers=bearer(standin.token()))
    before = len(standin.jwks_hits)
    for index in range(30):
        token = standin.token(header={"kid": f"random-{index}"})
        assert (
            gateway.client.get("/fhir/Patient", headers=bearer(token)).status_code
            == 401
        )
    assert len(standin.jwks_hits) - before <= 1


@pytest.mark.parametrize(
    ("scope", "path", "status"),
    [
        ("system/Observation.rs", "/fhir/Patient", 403),
        ("system/Patient.r", "/fhir/Patient", 403),
        ("system/Patient.s", "/fhir/Patient/p1", 403),
        ("patient/*.rs", "/fhir/Patient", 403),
        ("system/Patient.rs?_tag=x", "/fhir/Patient", 403),
        ("system/Patient.rs", "/fhir/Patient?_revinclude=Observation:subject", 403),
        ("system/Patient.rs", "/fhir/Patient?_has:Observation:subject:code=1", 403),
        ("system/Observation.rs", "/fhir/Observation?subject.name=x", 403),
        (
            "system/Observation.rs system/Patient.rs",
            "/fhir/Observation?subject:Patient.name=x",
            200,
        ),
        ("system/Patient.read", "/fhir/Patient/p1", 200),
        ("system/Patient.r system/Patient.s", "/fhir/Patient", 200),
    ],
)
def test_scopes_decide_each_request(
    gateway: GatewayUnderTest, standin: StandIn, scope: str, path: str, status: int
) -> None:
    response = gateway.client.get(path, headers=bearer(standin.token({"scope": scope})))
    assert response.status_code == status
    if status == 403:
        assert (
            response.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
        )
        assert gateway.recorder.requests == []


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/fhir/metadata/../Patient/p2", {}, 400),
        ("/fhir//Patient", {}, 400),
        ("/fhir/Patient%2Fp2", {}, 400),
        ("/fhir/Patient%5cp2", {}, 400),
        ("/fhir/Patient/%2e%2e/x", {}, 400),
        ("/fhir/Patient;x=1", {}, 400),
        ("/fhir/Patient/%00", {}, 400),
        ("/fhir/Patient/%0d%0aInjected", {}, 400),
        ("/FHIR/Patient/p2", {}, 404),
        ("/other", {}, 404),
        ("/fhir/Patient?access_token=abc", {}, 401),
        ("/fhir/Patient", {"Cookie": "session=1"}, 401),
        ("/fhir/Patient", {"X-HTTP-Method-Override": "DELETE"}, 400),
        ("/fhir/Patient", {"Accept": "application/xml"}, 406),
        ("/fhir/Patient?_format=xml", {}, 406),
        ("/fhir/Patient?" + "a=b&" * 2000, {}, 414),
    ],
)
def test_edge_and_filter_refusals(
    gateway: GatewayUnderTest,
    standin: StandIn,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    # http.client sends the path exactly as written (httpx would normalise it).
    host, port = gateway.client.base_url.host, gateway.client.base_url.port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path, headers={**bearer(standin.token()), **headers})
        response = connection.getresponse()
        status_code, text = response.status, response.read().decode()
    finally:
        connection.close()
    assert status_code == status
    assert json.loads(text)["resourceType"] == "OperationOutcome"
    assert gateway.recorder.requests == []
    assert "Injected" not in text


def test_oversized_token_header_is_refused_before_decoding(
    gateway: GatewayUnderTest,
) -> None:
    response = gateway.client.get("/fhir/Patient", headers=bearer("a" * 20000))
    assert_refused(gateway, response, 431)


def test_cookie_with_garbage_bearer_is_401(gateway: GatewayUnderTest) -> None:
    response = gateway.client.get(
        "/fhir/Patient",
        headers={**bearer("not-a-jwt"), "Cookie": "session=valid"},
    )
    assert_refused(gateway, response, 401)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"resourceType":"Patient","id":"a","id":"b"}', "application/fhir+json", 400),
        (b"[" * 20000 + b"]" * 20000, "application/fhir+json", 400),
        (b'{"resourceType":"Observation"}', "application/fhir+json", 400),
        (b'{"resourceType":"Patient","value":NaN}', "application/fhir+json", 400),
        (b'\xef\xbb\xbf{"resourceType":"Patient"}', "application/fhir+json", 400),
        (b'{"resourceType":"Patient"} x', "application/fhir+json", 400),
        (b'{"resourceType":"Patient"}', "text/plain", 415),
        (b'{"resourceType":"Patient"}', "application/fhir+json; charset=latin-1", 415),
        (b"x" * 2_000_000, "application/fhir+json", 413),
    ],
)
def test_body_refusals(
    gateway: GatewayUnderTest,
    standin: StandIn,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    token = standin.token({"scope": "system/*.cruds"})
    response = gateway.client.post(
        "/fhir/Patient",
        headers={**bearer(token), "Content-Type": content_type},
        content=body,
    )
    assert_refused(gateway, response, status)


def test_gzip_body_is_refused(gateway: GatewayUnderTest, standin: StandIn) -> None:
    token = standin.token({"scope": "system/*.cruds"})
    response = gateway.client.post(
        "/fhir/Patient",
        headers={
            **bearer(token),
            "Content-Type": "application/fhir+json",
            "Content-Encoding": "gzip",
        },
        content=b"\x1f\x8b",
    )
    assert_refused(gateway, response, 415)


def test_update_id_must_match_url(gateway: GatewayUnderTest, standin: StandIn) -> None:
    token = standin.token({"scope": "system/*.cruds"})
    response = gateway.client.put(
        "/fhir/Patient/a",
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
        content=b'{"resourceType":"Patient","id":"b"}',
    )
    assert_refused(gateway, response, 400)
    assert response.json()["issue"][0]["expression"] == ["id"]


def test_client_rate_limit_gives_429_with_retry_after(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    token = standin.token({"client_id": "limited", "sub": "limited"})
    statuses = [
        gateway.client.get("/fhir/Patient", headers=bearer(token)).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    refused = gateway.client.get("/fhir/Patient", headers=bearer(token))
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["issue"][0]["code"] == "throttled"
    assert len(gateway.recorder.requests) == 3


def test_forwarding_headers_are_not_trusted_or_forwarded(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = gateway.client.get(
        "/fhir/Patient",
        headers={
            **bearer(standin.token()),
            "X-Forwarded-For": "10.0.0.1",
            "X-Forwarded-Uri": "/fhir/metadata",
            "X-Real-IP": "127.0.0.1",
            "Forwarded": "for=10.0.0.1",
            "Kaitiaki-Client-Id": "admin",
        },
    )
    assert response.status_code == 200
    sent = gateway.recorder.requests[0]["headers"]
    assert not {"x-forwarded-for", "x-forwarded-uri", "x-real-ip", "forwarded"} & set(
        sent
    )
    assert sent["kaitiaki-client-id"] == "svc"
    assert gateway.events()[-1]["client_address"] == "127.0.0.1"


def test_one_audit_event_per_request_without_secrets(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    token = standin.token()
    gateway.client.get("/fhir/Patient?identifier=ZAC5361", headers=bearer(token))
    gateway.client.get("/fhir/Patient", headers=FHIR)
    gateway.client.get("/fhir/Patient", headers={**bearer(token), "Cookie": "c=SECRET"})
    gateway.client.get("/nowhere", headers=FHIR)
    events = gateway.events()
    assert [event["status"] for event in events] == [200, 401, 401, 404]
    assert [event["outcome"] for event in events] == [
        "served",
        "refused",
        "refused",
        "refused",
    ]
    assert events[0]["client_id"] == "svc"
    assert events[0]["route"] == "/fhir/{type}"
    assert events[1]["refusal_step"] == "authenticate"
    assert events[2]["refusal_code"] == "cookie_present"
    text = gateway.audit_path.read_text()
    for secret in (token, "SECRET", "ZAC5361"):
        assert secret not in text


def test_correlation_id_is_echoed_and_forwarded(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = gateway.client.get(
        "/fhir/Patient",
        headers={**bearer(standin.token()), "X-Correlation-Id": "abc-1"},
    )
    assert response.headers["x-correlation-id"] == "abc-1"
    assert gateway.recorder.requests[0]["headers"]["x-correlation-id"] == "abc-1"
    unsafe = gateway.client.get(
        "/fhir/Patient", headers={**FHIR, "X-Correlation-Id": "a b<script>"}
    )
    assert unsafe.headers["x-correlation-id"] != "a b<script>"


def test_head_is_authorised_as_read(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    anonymous = gateway.client.head("/fhir/Patient/p1")
    assert anonymous.status_code == 401
    allowed = gateway.client.head("/fhir/Patient/p1", headers=bearer(standin.token()))
    assert allowed.status_code == 200
    assert allowed.content == b""
    assert [r["method"] for r in gateway.recorder.requests] == ["HEAD"]


def test_upstream_failure_body_is_never_relayed(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = gateway.client.get("/fhir/Patient/boom", headers=bearer(standin.token()))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "Traceback" not in response.text
    assert "internal" not in response.text
    event = gateway.events()[-1]
    assert (event["outcome"], event["refusal_code"]) == ("failed", "upstream_error")


@pytest.mark.parametrize(
    "query",
    [
        "identifier=https://standards.digital.health.nz/ns/nhi-id|ZZZ0017",
        "_count=many",
    ],
)
def test_search_validation_refuses_before_upstream(
    gateway: GatewayUnderTest, standin: StandIn, query: str
) -> None:
    response = gateway.client.get(
        f"/fhir/Patient?{query}", headers=bearer(standin.token())
    )
    assert_refused(gateway, response, 400)
    assert "ZZZ0017" not in response.text


def test_search_count_is_capped_upstream(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = gateway.client.get(
        "/fhir/Patient?_count=5000", headers=bearer(standin.token())
    )
    assert response.status_code == 200
    assert gateway.recorder.requests[0]["query"] == "_count=100"


def test_body_with_invalid_nhi_is_refused(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    token = standin.token({"scope": "system/*.cruds"})
    body = {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "https://standards.digital.health.nz/ns/nhi-id",
                "value": "ZZZ0017",
            }
        ],
    }
    response = gateway.client.post(
        "/fhir/Patient",
        json=body,
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
    )
    assert_refused(gateway, response, 400)
    assert response.json()["issue"][0]["expression"] == ["Patient.identifier[0].value"]


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/fhir/Patient", {}, 401),  # no token
        ("/fhir/Patient", {"Cookie": "s=1"}, 401),  # zero trust: no cookies
        ("/fhir/Nonsense", None, 404),  # no route
        ("/fhir/Patient?_nonsense=1", None, 400),  # unknown parameter
        ("/fhir/Patient%2Fx", None, 400),  # path rule
    ],
)
def test_refusals_carry_the_hardening_headers(
    gateway: GatewayUnderTest,
    standin: StandIn,
    path: str,
    headers: dict[str, str] | None,
    status: int,
) -> None:
    sent = {"Accept": "application/fhir+json"}
    if headers != {}:
        sent.update(bearer(standin.token()))
    sent.update(headers or {})
    response = gateway.client.get(path, headers=sent)
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store, private"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["expires"] == "0"
    assert [h for h in response.headers.raw if h[0].lower() == b"cache-control"] == [
        (b"cache-control", b"no-store, private")
    ]
