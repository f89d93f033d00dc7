"""The probe's HTTP client reaches only allowed origins and methods, within
its budget and rate."""

from __future__ import annotations

import httpx
import pytest

from kaitiaki.errors import BudgetSpent, OutOfScope
from kaitiaki.probe.http import ProbeHttp, origin_of
from kaitiaki.probe.redact import Redactor


def _client(
    seen: list[httpx.Request], *, destructive: bool = False, budget: int = 50
) -> tuple[ProbeHttp, list[float]]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": []})

    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    http = ProbeHttp(
        ["https://api.example/fhir", "https://auth.example/token"],
        redactor=Redactor(),
        max_requests=budget,
        rate_per_second=10,
        allow_destructive=destructive,
        transport=httpx.MockTransport(handler),
        clock=lambda: now[0],
        sleep=sleep,
    )
    return http, sleeps


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example/fhir/Patient",
        "http://api.example/fhir/Patient",  # another scheme is another origin
        "https://api.example:8443/fhir/Patient",
        "https://api.example.attacker.example/",
        "file:///etc/passwd",
    ],
)
def test_probe_http_refuses_other_origins(url: str) -> None:
    seen: list[httpx.Request] = []
    http, _ = _client(seen)
    with pytest.raises(OutOfScope):
        http.send("GET", url)
    assert seen == []


def test_probe_http_reaches_base_and_token_origins() -> None:
    seen: list[httpx.Request] = []
    http, _ = _client(seen)
    http.send("GET", "https://api.example/fhir/metadata")
    http.send("POST", "https://auth.example/token", content=b"x=1")
    assert [r.url.host for r in seen] == ["api.example", "auth.example"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_probe_http_refuses_destructive_methods_unless_allowed(method: str) -> None:
    seen: list[httpx.Request] = []
    http, _ = _client(seen)
    with pytest.raises(OutOfScope):
        http.send(method, "https://api.example/fhir/Patient/x")
    allowed, _ = _client(seen, destructive=True)
    allowed.send(method, "https://api.example/fhir/Patient/x")
    assert [r.method for r in seen] == [method]


def test_probe_http_stops_at_its_budget() -> None:
    seen: list[httpx.Request] = []
    http, _ = _client(seen, budget=3)
    for _ in range(3):
        http.send("GET", "https://api.example/fhir/metadata", burst=True)
    with pytest.raises(BudgetSpent):
        http.send("GET", "https://api.example/fhir/metadata", burst=True)
    assert len(seen) == 3


def test_probe_http_paces_requests_unless_bursting() -> None:
    seen: list[httpx.Request] = []
    http, sleeps = _client(seen)
    for _ in range(3):
        http.send("GET", "https://api.example/fhir/metadata")
    assert sleeps == [pytest.approx(0.1), pytest.approx(0.1)]
    http.send("GET", "https://api.example/fhir/metadata", burst=True)
    assert len(sleeps) == 2


def test_probe_http_evidence_is_redacted() -> None:
    seen: list[httpx.Request] = []
    http, _ = _client(seen)
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    sent = http.send(
        "GET",
        f"https://api.example/fhir/Patient?identifier=ZZZ0016&access_token={token}",
        headers={"Authorization": f"Bearer {token}", "Cookie": "session=abc"},
    )
    text = repr(sent.exchange)
    assert token not in text and "ZZZ0016" not in text and "abc" not in text
    assert sent.exchange.response_body is not None
    assert "withheld" in sent.exchange.response_body


def test_probe_origin_needs_an_absolute_url() -> None:
    assert origin_of("https://API.example/x") == ("https", "api.example", 443)
    with pytest.raises(OutOfScope):
        origin_of("/relative")


def test_probe_http_never_sends_back_a_cookie_it_was_given() -> None:
    # Every check stands alone: a session cookie the target sets must not
    # authenticate (or colour) the next check's request.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"set-cookie": "sid=abc; Path=/"})

    http = ProbeHttp(
        ["https://api.example/fhir"],
        redactor=Redactor(),
        max_requests=5,
        rate_per_second=1000,
        transport=httpx.MockTransport(handler),
    )
    first = http.send("GET", "https://api.example/fhir/metadata")
    assert "sid=abc" in first.headers["set-cookie"]
    http.send("GET", "https://api.example/fhir/Patient")
    assert len(seen) == 2
    assert "cookie" not in seen[1].headers
