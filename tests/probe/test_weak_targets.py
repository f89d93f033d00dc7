"""Each check fails against the weak target made for it, with evidence."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port
from tests.probe.conftest import ProbeRun, Stack

from kaitiaki.probe import Report, Verdict

# weakness switch -> the checks that must fail against it
WEAK_TARGETS: list[tuple[str, tuple[str, ...]]] = [
    ("anonymous-access", ("authn.no-token",)),
    ("no-challenge", ("authn.no-token",)),
    ("accepts-malformed", ("authn.malformed",)),
    ("accepts-expired", ("authn.expired",)),
    ("accepts-not-yet-valid", ("authn.not-yet-valid",)),
    ("accepts-wrong-audience", ("authn.wrong-audience",)),
    ("accepts-wrong-issuer", ("authn.wrong-issuer",)),
    ("accepts-alg-none", ("authn.alg-none",)),
    ("accepts-hmac", ("authn.hmac-public-key",)),
    ("accepts-unknown-kid", ("authn.unknown-kid",)),
    ("accepts-oversized", ("authn.oversized",)),
    ("token-in-query", ("authn.token-in-query",)),
    ("accepts-basic", ("authn.basic",)),
    ("allows-trace", ("zt.unlisted-methods",)),
    ("cookie-session", ("authn.token-in-cookie", "zt.cookie-only")),
    (
        "ignores-write-scope",
        (
            "authz.create-without-scope",
            "authz.update-without-scope",
            "authz.delete-without-scope",
        ),
    ),
    ("ignores-type-scope", ("authz.other-type",)),
    ("include-leaks", ("authz.revinclude", "authz.include", "authz.has")),
    ("batch-unchecked", ("authz.batch",)),
    ("stack-trace", ("validate.malformed-json",)),
    ("echoes-input", ("validate.malformed-json", "validate.unknown-search-parameter")),
    ("accepts-duplicate-keys", ("validate.duplicate-keys",)),
    ("crashes-on-nesting", ("validate.deep-nesting",)),
    ("trusts-body-type", ("validate.wrong-resource-type",)),
    ("skips-nhi-check", ("validate.invalid-nhi",)),
    ("ignores-accept", ("validate.unsupported-accept",)),
    ("ignores-content-type", ("validate.unsupported-content-type",)),
    ("no-body-limit", ("validate.oversized-body",)),
    ("ignores-unknown-parameters", ("validate.unknown-search-parameter",)),
    ("sets-cookie", ("zt.no-set-cookie",)),
    ("trusts-internal-address", ("zt.forwarding-anonymous",)),
    ("honours-forwarded-host", ("zt.forwarding-links",)),
    ("accepts-dpop-replay", ("authn.dpop-replay",)),
    ("method-override", ("zt.method-override",)),
    ("cors-reflect", ("zt.cors",)),
    ("no-cache-control", ("http.no-store",)),
    ("version-banner", ("http.no-version-banner",)),
    ("never-throttles", ("throttle.burst",)),
    ("no-retry-after", ("throttle.burst",)),
    ("throttles-everyone", ("throttle.other-client",)),
    ("unaudited-refusals", ("log.refusals-audited",)),
]


def verdicts(report: Report) -> dict[str, Verdict]:
    return {result.check.id: result.verdict for result in report.results}


def assert_failed_with_evidence(report: Report, check_ids: tuple[str, ...]) -> None:
    found = {result.check.id: result for result in report.results}
    for check_id in check_ids:
        result = found[check_id]
        assert result.verdict is Verdict.FAIL, (check_id, result.outcome.summary)
        assert result.outcome.summary


@pytest.mark.parametrize(("weakness", "check_ids"), WEAK_TARGETS)
def test_probe_check_fails_against_its_weak_target(
    probe: ProbeRun, weakness: str, check_ids: tuple[str, ...]
) -> None:
    only = tuple(dict.fromkeys([*check_ids, "authn.valid-token"]))
    if weakness == "unaudited-refusals":
        only = ("authn.no-token", *check_ids)
    report = probe(weakness, only)
    assert_failed_with_evidence(report, check_ids)
    # The control still passes: the failure is the weakness, not a broken run.
    control = verdicts(report).get("authn.valid-token")
    if control is not None and weakness != "throttles-everyone":
        assert control is Verdict.PASS


def test_probe_logged_token_is_found(
    probe: ProbeRun, stack: Stack, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    profile = stack.profile(logging={"files": [str(log)], "audit_sqlite": None})
    report = probe(
        "logs-tokens", ("authn.valid-token", "log.no-canaries"), profile, log_file=log
    )
    assert_failed_with_evidence(report, ("log.no-canaries",))


@pytest.mark.parametrize(
    ("switch", "families"),
    [
        ("waf", ("filter.",)),
        ("strict-request-context", ("validate.invalid-request-context",)),
    ],
)
def test_probe_controls_still_growing_pass_when_present(
    probe: ProbeRun, switch: str, families: tuple[str, ...]
) -> None:
    report = probe(switch, families)
    assert report.results
    assert all(r.verdict is Verdict.PASS for r in report.results), [
        (r.check.id, r.outcome.summary) for r in report.results
    ]


def _metadata(origin: str, token_endpoint: str, **changes: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "issuer": origin,
        "jwks_uri": f"{origin}/jwks",
        "token_endpoint": token_endpoint,
        "introspection_endpoint": f"{origin}/introspect",
        "revocation_endpoint": f"{origin}/revoke",
        "grant_types_supported": ["client_credentials"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }
    metadata.update(changes)
    return {k: v for k, v in metadata.items() if v is not None}


RSA_KEY = {
    "kty": "RSA",
    "kid": "r1",
    "e": "AQAB",
    "n": base64.urlsafe_b64encode(b"\xc1" * 256).rstrip(b"=").decode(),
}

AS_TARGETS: list[tuple[str, dict[str, Any], dict[str, Any] | None, str]] = [
    (
        "password",
        {"grant_types_supported": ["client_credentials", "password"]},
        None,
        "as.no-implicit-or-password",
    ),
    (
        "implicit",
        {
            "authorization_endpoint": "/authorize",
            "response_types_supported": ["code", "token"],
        },
        None,
        "as.no-implicit-or-password",
    ),
    (
        "pkce-plain",
        {
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["plain", "S256"],
        },
        None,
        "as.pkce-s256",
    ),
    ("no-introspection", {"introspection_endpoint": None}, None, "as.introspection"),
    ("no-revocation", {"revocation_endpoint": None}, None, "as.revocation"),
    (
        "hmac-signing",
        {"id_token_signing_alg_values_supported": ["HS256"]},
        None,
        "as.signing-algorithms",
    ),
    ("rsa-keys", {}, {"keys": [RSA_KEY]}, "as.signing-algorithms"),
    ("private-jwks", {}, "private", "iam.jwks-public-only"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("name", "changes", "jwks", "check_id"), AS_TARGETS)
def test_probe_authorisation_server_check_fails_against_weak_metadata(
    probe: ProbeRun,
    stack: Stack,
    name: str,
    changes: dict[str, Any],
    jwks: Any,
    check_id: str,
) -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    token_endpoint = f"{stack.issuer}/token"
    keys = stack.jwks
    if jwks == "private":
        keys = {"keys": [{**stack.jwks["keys"][0], "d": "c2VjcmV0"}]}
    elif jwks is not None:
        keys = jwks
    profile = stack.profile(auth={"issuer": origin, "token_endpoint": token_endpoint})
    report = probe(
        None,
        (check_id,),
        profile,
        port=port,
        metadata=_metadata(origin, token_endpoint, **changes),
        jwks=keys,
        issuer=origin,
    )
    assert_failed_with_evidence(report, (check_id,))
    assert json.dumps([r.outcome.summary for r in report.results])


def test_probe_vulnerable_dependency_fails(
    probe: ProbeRun, stack: Stack, tmp_path: Path
) -> None:
    pins = tmp_path / "requirements.txt"
    pins.write_text("jinja2==2.7\n")
    snapshot = Path(__file__).parents[3] / "shared/data/pypa-advisories/vulns/jinja2"
    profile = stack.profile(
        dependencies={"requirements": [str(pins)], "advisories": str(snapshot)}
    )
    report = probe(None, ("deps.",), profile)
    assert_failed_with_evidence(report, ("deps.known-vulnerabilities",))
