"""Requirement 1 (authorisation server) and 8 (keys): the discovery document
offers no implicit or password grant, PKCE S256 where codes are offered,
introspection and revocation, strong signing algorithms; tokens are
short-lived; the JWKS holds public keys only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kaitiaki.probe.checks.common import fail, not_applicable, passed
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import Target
from kaitiaki.probe.tokens import unverified_claims

__all__ = ["CHECKS"]

STRONG_ALGS = frozenset({"ES256", "ES384", "ES512", "EdDSA"})
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")
MAX_LIFETIME = 3600


def _metadata(target: Target) -> dict[str, Any] | Outcome:
    found = target.discovery()
    if found is None:
        return fail("no discovery document at the issuer's well-known URLs")
    return found


def _list(metadata: dict[str, Any], name: str) -> list[str]:
    value = metadata.get(name)
    return [str(v) for v in value] if isinstance(value, list) else []


def _grants(target: Target) -> Outcome:
    metadata = _metadata(target)
    if isinstance(metadata, Outcome):
        return metadata
    grants = _list(metadata, "grant_types_supported")
    if "password" in grants:
        return fail("the password (ROPC) grant is offered")
    responses = _list(metadata, "response_types_supported")
    implicit = "implicit" in grants or any(
        "token" in r.split() for r in responses if r != "code"
    )
    # Implicit needs an authorisation endpoint; without one no flow is possible.
    if implicit and metadata.get("authorization_endpoint"):
        return fail("the implicit grant is offered (response type with 'token')")
    return passed(f"grants offered: {', '.join(grants) or '(none listed)'}")


def _pkce(target: Target) -> Outcome:
    metadata = _metadata(target)
    if isinstance(metadata, Outcome):
        return metadata
    grants = _list(metadata, "grant_types_supported")
    if "authorization_code" not in grants and not metadata.get(
        "authorization_endpoint"
    ):
        return not_applicable("no authorization_code grant is offered")
    methods = _list(metadata, "code_challenge_methods_supported")
    if "S256" not in methods or "plain" in methods:
        return fail(
            f"code_challenge_methods_supported is {methods}: S256 only expected"
        )
    return passed("PKCE with S256 only")


def _endpoint(name: str, what: str) -> Callable[[Target], Outcome]:
    def run(target: Target) -> Outcome:
        metadata = _metadata(target)
        if isinstance(metadata, Outcome):
            return metadata
        value = metadata.get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            return fail(f"the discovery document names no {name} ({what})")
        return passed(f"{name} is published")

    return run


def _signing(target: Target) -> Outcome:
    metadata = _metadata(target)
    if isinstance(metadata, Outcome):
        return metadata
    listed = set(_list(metadata, "id_token_signing_alg_values_supported"))
    listed |= set(_list(metadata, "token_endpoint_auth_signing_alg_values_supported"))
    weak = sorted(a for a in listed if a == "none" or a.startswith("HS"))
    if weak:
        return fail(f"weak or no signature algorithms are offered: {weak}")
    keys = target.jwks()
    kinds = sorted({str(k.get("kty")) for k in keys})
    if not keys:
        return fail("the JWKS is empty or unreachable")
    if not set(kinds) <= {"EC", "OKP"}:
        return fail(f"the JWKS holds {kinds} keys; EdDSA or ECDSA keys are required")
    return passed(f"signing keys are {', '.join(kinds)}; algorithms {sorted(listed)}")


def _lifetime(target: Target) -> Outcome:
    issued = target.tokens.get("reader")
    target.canaries.add(issued.access_token)
    claims = unverified_claims(issued.access_token)
    lifetime: int | None = issued.expires_in
    if isinstance(claims.get("exp"), int) and isinstance(claims.get("iat"), int):
        lifetime = claims["exp"] - claims["iat"]
    if lifetime is None:
        return fail("the token response states no lifetime (expires_in)")
    if lifetime > MAX_LIFETIME:
        return fail(f"access tokens live {lifetime} s (more than {MAX_LIFETIME} s)")
    return passed(f"access tokens live {lifetime} s")


def _jwks_public(target: Target) -> Outcome:
    keys = target.jwks()
    if not keys:
        return not_applicable("no JWKS was found to inspect")
    leaked = sorted({m for k in keys for m in PRIVATE_MEMBERS if m in k})
    shown = (target.memo["jwks_sent"],) if "jwks_sent" in target.memo else ()
    if leaked:
        # The evidence would carry the private key itself: name members only.
        return fail(f"the JWKS exposes private key members {leaked}")
    return passed(
        f"the JWKS holds {len(keys)} public keys and no private members", *shown
    )


def _with_discovery(run: Callable[[Target], Outcome]) -> Callable[[Target], Outcome]:
    """Attach the discovery exchange as evidence to the outcome of ``run``."""

    def wrapped(target: Target) -> Outcome:
        outcome = run(target)
        sent = target.memo.get("discovery_sent")
        if sent is None or outcome.evidence:
            return outcome
        return Outcome(outcome.verdict, outcome.summary, (sent.exchange,))

    return wrapped


def _check(
    check_id: str,
    title: str,
    run: Callable[[Target], Outcome],
    hnzas: tuple[str, ...],
    remedy: str,
    *,
    row: int = 1,
    severity: Severity = Severity.HIGH,
) -> Check:
    return Check(check_id, title, row, hnzas, severity, remedy, _with_discovery(run))


CHECKS: tuple[Check, ...] = (
    _check(
        "as.no-implicit-or-password",
        "The authorisation server offers no implicit or password grant",
        _grants,
        (
            "HNZAS_MUST_NOT_USE_OAUTH2_IMPLICIT_OR_PASSWORD_GRANT",
            "HNZAS_MUST_NOT_USE_ROPC",
        ),
        "Disable the implicit and resource-owner-password grants for every client.",
        severity=Severity.CRITICAL,
    ),
    _check(
        "as.pkce-s256",
        "PKCE with S256 only, where authorisation codes are offered",
        _pkce,
        ("HNZAS_MUST_USE_PKCE_FOR_AUTH_CODE_FLOW",),
        "Require PKCE with code_challenge_method S256 and refuse plain.",
    ),
    _check(
        "as.introspection",
        "A token introspection endpoint is published",
        _endpoint("introspection_endpoint", "RFC 7662"),
        ("HNZAS_MUST_PROVIDE_TOKEN_INTROSPECTION_ENDPOINT",),
        "Offer RFC 7662 introspection with client authentication and publish it.",
        severity=Severity.MEDIUM,
    ),
    _check(
        "as.revocation",
        "A token revocation endpoint is published",
        _endpoint("revocation_endpoint", "RFC 7009"),
        ("HNZAS_MUST_PROVIDE_TOKEN_REVOCATION_ENDPOINT",),
        "Offer RFC 7009 revocation with client authentication and publish it.",
        severity=Severity.MEDIUM,
    ),
    _check(
        "as.signing-algorithms",
        "Tokens are signed with EdDSA or ECDSA; no none or HMAC is offered",
        _signing,
        ("HNZAS_MUST_USE_EDDSA_OR_ECDSA_FOR_SIGNING",),
        "Sign tokens with ES256/ES384/EdDSA keys and list only those algorithms.",
    ),
    _check(
        "as.token-lifetime",
        "Access tokens are short-lived (one hour at most)",
        _lifetime,
        (
            "HNZAS_MUST_USE_SHORT_LIVED_ACCESS_TOKENS",
            "HNZAS_SHOULD_LIMIT_TOKEN_LIFETIME",
        ),
        "Issue access tokens for 30 minutes or less (the standard suggests ~10).",
        severity=Severity.MEDIUM,
    ),
    _check(
        "iam.jwks-public-only",
        "The published JWKS contains no private key material",
        _jwks_public,
        (),
        "Publish only public key members (kty, crv, x, y, n, e, kid, use, alg).",
        row=8,
        severity=Severity.CRITICAL,
    ),
)
