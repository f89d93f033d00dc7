"""Requirement 1, authentication: every credential problem is a 401.

Forged tokens are signed by the probe's own throwaway key (the probe holds
no key of the target's issuer), so the expired, not-yet-valid, wrong-audience
and wrong-issuer forgeries are refused for their signature too: a pass shows
forged tokens are refused, and the claim itself is only checked by the
target's own unit tests. The report says so on each of these checks.
"""

from __future__ import annotations

from collections.abc import Callable

from kaitiaki.probe.checks.common import (
    fail,
    not_applicable,
    passed,
    status_outcome,
    subject_of,
)
from kaitiaki.probe.forge import dpop_proof, public_key_pem
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import Target

__all__ = ["CHECKS"]

AUTHN = ("HNZAS_MUST_AUTHENTICATE_API_CONSUMERS", "HNZAS_MUST_VALIDATE_OAUTH2_TOKENS")
SIGNED = ("HNZAS_MUST_USE_JWT_SIGNED_BEARER_TOKENS",)
LIMITATION = (
    "The probe holds no key of the target's issuer: this forgery is signed by "
    "the probe's own key, so a refusal may come from the signature check and "
    "does not isolate the claim check."
)
FIX_VERIFY = (
    "Verify every bearer token before use: signature against the issuer's JWKS "
    "with an algorithm allow-list fixed per key, then iss, aud, exp and nbf; "
    'answer 401 with WWW-Authenticate: Bearer error="invalid_token".'
)


def _valid_token_accepted(target: Target) -> Outcome:
    sent = target.request("GET", target.read_path)
    if 200 <= sent.status < 300:
        return passed("a valid token from the token endpoint is served", sent)
    return fail(
        f"a valid token was answered with HTTP {sent.status}: the other "
        "authentication checks cannot tell refusal from breakage",
        sent,
    )


def _no_token(target: Target) -> Outcome:
    sent = target.request("GET", target.read_path, role=None)
    outcome = status_outcome([sent], {401}, "no Authorization header")
    if outcome.verdict.value == "pass" and "www-authenticate" not in sent.headers:
        return fail("401 without a WWW-Authenticate challenge (RFC 6750 §3)", sent)
    return outcome


def _token_check(
    check_id: str,
    title: str,
    make: Callable[[Target], list[str]],
    *,
    hnzas: tuple[str, ...] = AUTHN,
    allowed: frozenset[int] = frozenset({401}),
    limitation: bool = False,
    severity: Severity = Severity.CRITICAL,
) -> Check:
    def run(target: Target) -> Outcome:
        sents = [
            target.request("GET", target.read_path, token=token)
            for token in make(target)
        ]
        return status_outcome(sents, set(allowed), subject_of(title))

    return Check(
        id=check_id,
        title=title,
        row=1,
        hnzas=hnzas,
        severity=severity,
        remedy=FIX_VERIFY,
        run=run,
        limitation=LIMITATION if limitation else None,
    )


def _claims(target: Target, **changes: object) -> list[str]:
    forger = target.forger()
    return [forger.signed(forger.claims(target.now, **changes))]


def _alg_none(target: Target) -> list[str]:
    forger = target.forger()
    claims = forger.claims(target.now)
    return [forger.unsigned(claims, alg) for alg in ("none", "None", "nOnE")]


def _hmac_public_key(target: Target) -> list[str]:
    forger = target.forger()
    claims = forger.claims(target.now)
    secrets = [pem for pem in map(public_key_pem, target.jwks()) if pem]
    tokens = [forger.hmac_with(claims, pem) for pem in secrets[:3]]
    # Without a JWKS the probe still sends one MAC, keyed with nothing public.
    return tokens or [forger.hmac_with(claims, b"kaitiaki-probe")]


def _unknown_kid(target: Target) -> list[str]:
    forger = target.forger()
    return [forger.signed(forger.claims(target.now), kid="kaitiaki-probe-unknown")]


def _oversized(target: Target) -> list[str]:
    forger = target.forger()
    # Past common token limits (8 KiB) yet under header limits (16 KiB).
    padding = "x" * 9_000
    return [forger.signed(forger.claims(target.now, padding=padding))]


def _token_in_query(target: Target) -> Outcome:
    token = target.token("reader")
    path = f"{target.read_path}&access_token={token}"
    sent = target.request("GET", path, role=None)
    return status_outcome([sent], {400, 401}, "a valid token in the query string")


def _token_in_cookie(target: Target) -> Outcome:
    token = target.token("reader")
    cookies = f"access_token={token}; token={token}; session={token}"
    sent = target.request(
        "GET", target.read_path, role=None, headers={"Cookie": cookies}
    )
    return status_outcome([sent], {400, 401}, "a valid token in a cookie only")


def _basic(target: Target) -> Outcome:
    # Base64 of "kaitiaki-probe:not-a-password": direct authentication.
    headers = {"Authorization": "Basic a2FpdGlha2ktcHJvYmU6bm90LWEtcGFzc3dvcmQ="}
    sent = target.request("GET", target.read_path, role=None, headers=headers)
    if "basic" in sent.headers.get("www-authenticate", "").lower():
        return fail("the answer invites HTTP Basic authentication", sent)
    return status_outcome([sent], {401}, "HTTP Basic credentials")


def _dpop_replay(target: Target) -> Outcome:
    algs = (target.discovery() or {}).get("dpop_signing_alg_values_supported")
    if not algs:
        return not_applicable("the authorisation server does not advertise DPoP")
    forger = target.forger()
    endpoint = target.token_endpoint()
    proof = dpop_proof(forger.key, "POST", endpoint, now=target.now)
    issued = target.tokens.get("reader", extra={"DPoP": proof})
    if issued.token_type.lower() != "dpop":
        return fail("DPoP is advertised but the token endpoint issued a bearer token")
    target.canaries.add(issued.access_token)
    target.http.redactor.add_secret(issued.access_token)
    url = target.url(target.read_path)
    proof = dpop_proof(
        forger.key, "GET", url, now=target.now, access_token=issued.access_token
    )
    headers = {"Authorization": f"DPoP {issued.access_token}", "DPoP": proof}
    first = target.request("GET", target.read_path, role=None, headers=headers)
    if not 200 <= first.status < 300:
        return fail(f"a fresh DPoP proof was refused (HTTP {first.status})", first)
    replay = target.request("GET", target.read_path, role=None, headers=headers)
    if replay.status != 401:
        return fail(
            f"a replayed DPoP proof was answered HTTP {replay.status}", first, replay
        )
    return passed(
        "a fresh proof is served and its replay refused with 401", first, replay
    )


def _simple(
    check_id: str,
    title: str,
    run: Callable[[Target], Outcome],
    *,
    hnzas: tuple[str, ...] = AUTHN,
    severity: Severity = Severity.CRITICAL,
    remedy: str = FIX_VERIFY,
) -> Check:
    return Check(check_id, title, 1, hnzas, severity, remedy, run)


CHECKS: tuple[Check, ...] = (
    _simple(
        "authn.valid-token",
        "A valid token is accepted (control for the checks below)",
        _valid_token_accepted,
        severity=Severity.HIGH,
        remedy="Make sure the probe's reader client can read the probed route.",
    ),
    _simple(
        "authn.no-token",
        "A request without a token is refused with 401",
        _no_token,
        hnzas=(*AUTHN, "HNZAS_MUST_USE_AUTHORIZATION_HEADER_FOR_GET_REQUEST"),
        remedy="Require a bearer token on every non-public route; answer 401 with "
        "a WWW-Authenticate: Bearer challenge.",
    ),
    _token_check(
        "authn.malformed",
        "A malformed bearer token is refused with 401",
        lambda t: ["not-a-jwt", "eyJhbGciOi.broken", "a.b.c.d"],
    ),
    _token_check(
        "authn.expired",
        "An expired token is refused with 401",
        lambda t: _claims(t, iat=t.now - 7200, nbf=t.now - 7200, exp=t.now - 3600),
        limitation=True,
    ),
    _token_check(
        "authn.not-yet-valid",
        "A token that is not yet valid is refused with 401",
        lambda t: _claims(t, iat=t.now, nbf=t.now + 3600, exp=t.now + 7200),
        limitation=True,
    ),
    _token_check(
        "authn.wrong-audience",
        "A token for another audience is refused with 401",
        lambda t: _claims(t, aud="https://attacker.example/other-api"),
        hnzas=(*AUTHN, "HNZAS_SHOULD_USE_AUDIENCE_CLAIM"),
        limitation=True,
    ),
    _token_check(
        "authn.wrong-issuer",
        "A token from another issuer is refused with 401",
        lambda t: _claims(t, iss="https://attacker.example/issuer"),
        limitation=True,
    ),
    _token_check(
        "authn.alg-none",
        "Unsigned tokens (alg none and its case variants) are refused with 401",
        _alg_none,
        hnzas=(*AUTHN, *SIGNED),
    ),
    _token_check(
        "authn.hmac-public-key",
        "HS256 MACed with the issuer's public key (key confusion) is refused",
        _hmac_public_key,
        hnzas=(*AUTHN, *SIGNED, "HNZAS_MUST_USE_EDDSA_OR_ECDSA_FOR_SIGNING"),
    ),
    _token_check(
        "authn.unknown-kid",
        "A token naming an unknown key id is refused with 401",
        _unknown_kid,
    ),
    _token_check(
        "authn.oversized",
        "An oversized token is refused (401, or 400/431 for the header)",
        _oversized,
        allowed=frozenset({400, 401, 431}),
        severity=Severity.HIGH,
    ),
    _simple(
        "authn.token-in-query",
        "A valid token in the query string is refused",
        _token_in_query,
        hnzas=(*AUTHN, "HNZAS_SHOULD_NOT_USE_API_KEYS_IN_URIS"),
        remedy="Accept access tokens only in the Authorization header; refuse the "
        "access_token query parameter (it ends up in logs and caches).",
        severity=Severity.HIGH,
    ),
    _simple(
        "authn.token-in-cookie",
        "A valid token carried only in a cookie is refused",
        _token_in_cookie,
        remedy="Never authenticate from cookies; read credentials only from the "
        "Authorization header.",
    ),
    _simple(
        "authn.basic",
        "HTTP Basic credentials are refused with 401 and never invited",
        _basic,
        hnzas=(*AUTHN, "HNZAS_SHOULD_NOT_USE_DIRECT_AUTH"),
        remedy="Accept only OAuth 2.0 bearer tokens; never offer or accept "
        "username/password (Basic/Digest) authentication.",
        severity=Severity.HIGH,
    ),
    _simple(
        "authn.dpop-replay",
        "A replayed DPoP proof is refused with 401 (where DPoP is advertised)",
        _dpop_replay,
        hnzas=("HNZAS_SHOULD_USE_SIGNED_REQUESTS", "HNZAS_MUST_BIND_TOKENS_TO_CLIENT"),
        remedy="Keep a replay cache of DPoP proof jti values for the proof "
        "lifetime and refuse a second use with 401.",
        severity=Severity.HIGH,
    ),
)
