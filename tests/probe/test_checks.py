"""Checks whose inputs a loopback stack cannot produce: public plain HTTP,
long-lived tokens, and the redaction of bodies."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from kaitiaki.probe.checks import ALL_CHECKS, transport
from kaitiaki.probe.checks.authserver import _lifetime
from kaitiaki.probe.http import ProbeHttp
from kaitiaki.probe.model import Verdict
from kaitiaki.probe.profile import parse_profile
from kaitiaki.probe.redact import Redactor
from kaitiaki.probe.runner import select_checks
from kaitiaki.probe.target import Target


def _target(base: str, handler: Any) -> Target:
    profile = parse_profile(
        {
            "auth": {"issuer": base, "token_endpoint": f"{base}/token"},
            "clients": {
                "reader": {
                    "client_id": "r",
                    "auth_method": "client_secret_post",
                    "secret": "env:HOME",
                }
            },
        },
        source="test",
    )
    http = ProbeHttp(
        [base],
        redactor=Redactor(),
        max_requests=20,
        rate_per_second=100,
        transport=httpx.MockTransport(handler),
    )
    return Target(base, profile, http)


@pytest.mark.parametrize(
    ("base", "verdict"),
    [
        ("http://api.example/fhir", Verdict.FAIL),
        ("http://127.0.0.1:8080/fhir", Verdict.NOT_APPLICABLE),
        ("http://localhost/fhir", Verdict.NOT_APPLICABLE),
    ],
)
def test_probe_tls_checks_on_plain_http(base: str, verdict: Verdict) -> None:
    target = _target(base, lambda request: httpx.Response(500))
    for check in transport.CHECKS[:3]:
        assert check.run(target).verdict is verdict


def _jwt(claims: dict[str, Any]) -> str:
    def segment(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{segment({'alg': 'ES256'})}.{segment(claims)}.c2ln"


@pytest.mark.parametrize(
    ("lifetime", "verdict"), [(600, Verdict.PASS), (86400, Verdict.FAIL)]
)
def test_probe_token_lifetime(lifetime: int, verdict: Verdict) -> None:
    token = _jwt({"iat": 1000, "exp": 1000 + lifetime})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": token, "expires_in": 60})

    assert _lifetime(_target("https://api.example", handler)).verdict is verdict


def test_probe_check_ids_are_unique_and_tagged() -> None:
    ids = [check.id for check in ALL_CHECKS]
    assert len(ids) == len(set(ids))
    assert all(1 <= check.row <= 8 for check in ALL_CHECKS)
    assert all(h.startswith("HNZAS_") for check in ALL_CHECKS for h in check.hnzas)
    assert {check.row for check in ALL_CHECKS} == set(range(1, 9))
    assert select_checks(["authn."]) and all(
        c.id.startswith("authn.") for c in select_checks(["authn."])
    )


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (b'{"resourceType":"Patient","name":[{"family":"Smith"}]}', False),
        (b'{"resourceType":"Bundle","entry":[{"resource":{"id":"x"}}]}', False),
        (b'{"resourceType":"OperationOutcome","issue":[]}', True),
        (b"[" * 5000, True),
    ],
)
def test_probe_redaction_withholds_patient_data(body: bytes, kept: bool) -> None:
    shown = Redactor().body(body) or ""
    assert ("withheld" not in shown) is kept
    assert "Smith" not in shown


def test_probe_html_escapes_hostile_evidence() -> None:
    from kaitiaki.probe.model import (
        Check,
        CheckResult,
        Exchange,
        Outcome,
        Report,
        Severity,
    )
    from kaitiaki.probe.reports import render_html

    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    exchange = Exchange(
        "GET",
        f"https://api.example/?q={hostile}",
        (),
        None,
        400,
        (("x-evil", hostile),),
        hostile,
    )
    check = Check(
        "demo.check",
        "A check",
        2,
        (),
        Severity.HIGH,
        "Fix it.",
        lambda target: Outcome(Verdict.FAIL, hostile),
    )
    result = CheckResult(check, Outcome(Verdict.FAIL, hostile, (exchange,)), 0.1)
    report = Report("https://api.example", "p", "t0", "t1", (result,), 1, "0")
    html = render_html(report)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def _dpop_target(replay_refused: bool) -> Target:
    """A mock AS + RS speaking DPoP; the RS refuses a reused proof jti or not."""
    base = "https://api.example"
    seen: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": base,
                    "token_endpoint": f"{base}/token",
                    "dpop_signing_alg_values_supported": ["ES256"],
                },
            )
        if path == "/token":
            assert "dpop" in request.headers
            return httpx.Response(
                200, json={"access_token": _jwt({"iat": 1}), "token_type": "DPoP"}
            )
        if "dpop" not in request.headers:  # the CapabilityStatement, not offered
            return httpx.Response(404)
        proof = request.headers["dpop"].split(".")[1]
        jti = json.loads(base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4)))
        replay = jti["jti"] in seen
        seen.add(jti["jti"])
        return httpx.Response(401 if replay and replay_refused else 200, json={})

    return _target(base, handler)


@pytest.mark.parametrize(
    ("replay_refused", "verdict"), [(True, Verdict.PASS), (False, Verdict.FAIL)]
)
def test_probe_dpop_replay(replay_refused: bool, verdict: Verdict) -> None:
    from kaitiaki.probe.checks.authentication import _dpop_replay

    outcome = _dpop_replay(_dpop_target(replay_refused))
    assert outcome.verdict is verdict, outcome.summary
