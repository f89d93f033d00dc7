"""Authenticate: the access token → a :class:`Principal`, or a 401.

* The token is taken only from one ``Authorization`` header, scheme
  ``Bearer`` (RFC 6750) or ``DPoP`` (RFC 9449); in the query string, a form
  body or a cookie it is refused before it is ever read.
* A token shaped like a compact JWS is verified as a JWT against the JWKS;
  anything else is an opaque token and goes to introspection, if configured.
* A token bound to a key (``cnf.jkt``) needs the ``DPoP`` scheme and a valid
  proof; one bound to a certificate (``cnf.x5t#S256``) needs that client
  certificate; a route may demand either binding of every token.
* Every 401 carries the ``WWW-Authenticate`` challenges that apply.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kaitiaki.errors import InvalidDpopProof, Unauthenticated, UseDpopNonce
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import Settings
from kaitiaki.tokens.compact import looks_like_jws, refuse
from kaitiaki.tokens.dpop import verify_proof
from kaitiaki.tokens.mtls import check_certificate_binding
from kaitiaki.tokens.principal import Principal
from kaitiaki.tokens.services import TokenServices

__all__ = [
    "Credential",
    "authenticate",
    "bearer_token",
    "presented_credential",
    "refuse_token_in_form",
]

# RFC 6750 b64token, bounded so a huge value is refused before any work.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEMES = {"bearer": "bearer", "dpop": "dpop"}


@dataclass(frozen=True, slots=True)
class Credential:
    scheme: Literal["bearer", "dpop"]
    token: str


def presented_credential(request: CanonicalRequest, *, max_bytes: int) -> Credential:
    values = request.headers.get("authorization", [])
    if not values:
        raise Unauthenticated("An access token is required.", detail="no_token")
    if len(values) > 1:
        raise refuse("repeated_header")
    scheme, _, token = values[0].strip().partition(" ")
    found = _SCHEMES.get(scheme.lower())
    if found is None:
        raise Unauthenticated("An access token is required.", detail="not_bearer")
    token = token.strip()
    if len(token) > max_bytes:
        raise refuse("token_too_large")
    if not _B64TOKEN.fullmatch(token):
        raise refuse("token_syntax")
    return Credential("dpop" if found == "dpop" else "bearer", token)


def bearer_token(request: CanonicalRequest, *, max_bytes: int) -> str:
    """The token of the ``Authorization`` header (either scheme)."""
    return presented_credential(request, max_bytes=max_bytes).token


def refuse_token_in_form(pairs: Iterable[tuple[str, str]]) -> None:
    """RFC 6750 §2.2 form-body tokens are not accepted (nor logged)."""
    if any(name == "access_token" for name, _ in pairs):
        raise Unauthenticated(
            "Access tokens are accepted only in the Authorization header.",
            detail="token_in_body",
        )


async def _verify(
    credential: Credential, settings: Settings, services: TokenServices, now: int
) -> Principal:
    if looks_like_jws(credential.token):
        return await services.jwt.verify(credential.token, now)
    if services.introspector is None:
        raise refuse("opaque_not_accepted")
    return await services.introspector.principal(credential.token, now)


async def _check_dpop(
    request: CanonicalRequest,
    settings: Settings,
    *,
    services: TokenServices,
    credential: Credential,
    principal: Principal,
    now: int,
) -> None:
    proofs = request.headers.get("dpop", [])
    if len(proofs) != 1:
        raise _proof_refusal("dpop_proof_missing" if not proofs else "dpop_repeated")
    dpop = settings.auth.dpop
    base = settings.gateway
    proof = verify_proof(
        proofs[0],
        dpop,
        method=request.method,
        url=base.base_url + request.path[len(base.fhir_base) :],
        access_token=credential.token,
        now=now,
        leeway=settings.auth.leeway_seconds,
        known=services.proof_keys,
    )
    if proof.jkt != principal.jkt:
        raise _proof_refusal("dpop_key_mismatch")
    if dpop.require_nonce and not services.nonces.accepts(proof.nonce, now):
        raise UseDpopNonce(
            "A fresh DPoP nonce is required.",
            detail="dpop_nonce",
            headers={"DPoP-Nonce": services.nonces.issue(now)},
        )
    key = hashlib.sha256(f"{proof.jkt}:{proof.jti}".encode()).hexdigest()
    ttl = dpop.max_age_seconds + 2 * settings.auth.leeway_seconds
    if not await services.replay.first_use(key, ttl):
        raise _proof_refusal("dpop_replay")


def _proof_refusal(detail: str) -> InvalidDpopProof:
    return InvalidDpopProof("The DPoP proof is not valid.", detail=detail)


def _check_requirement(settings: Settings, path: str, principal: Principal) -> None:
    required = settings.auth.sender_constraint_for(path)
    bound = {"dpop": principal.jkt is not None, "mtls": principal.x5t_s256 is not None}
    if required == "either" and not any(bound.values()):
        raise refuse("sender_constraint_required")
    if required in bound and not bound[required]:
        raise refuse(f"{required}_binding_required")


async def _bound_principal(
    request: CanonicalRequest,
    settings: Settings,
    services: TokenServices,
    credential: Credential,
    now: int,
) -> Principal:
    principal = await _verify(credential, settings, services, now)
    if principal.jkt is not None:
        if credential.scheme != "dpop":
            raise refuse("dpop_bound_token_as_bearer")
        await _check_dpop(
            request,
            settings,
            services=services,
            credential=credential,
            principal=principal,
            now=now,
        )
    elif credential.scheme == "dpop":
        raise refuse("dpop_scheme_unbound_token")
    if principal.x5t_s256 is not None:
        check_certificate_binding(principal.x5t_s256, request.client_certificate)
    path = request.path[len(settings.gateway.fhir_base) :]
    _check_requirement(settings, path, principal)
    return principal


def _challenge_of(scheme: str, error: str | None, extra: str = "") -> str:
    params = [f'error="{error}"'] if error else []
    params += [extra] if extra else []
    return f"{scheme} {', '.join(params)}" if params else scheme


def challenge(
    refusal: Unauthenticated, settings: Settings, path: str, scheme: str | None
) -> str:
    """The ``WWW-Authenticate`` value: every scheme the route accepts, the
    error code on the scheme the client used."""
    required = settings.auth.sender_constraint_for(path)
    error = refusal.bearer_error
    algs = 'algs="' + " ".join(settings.auth.dpop.algorithms) + '"'
    parts = []
    if required in ("optional", "mtls") or scheme == "bearer":
        parts.append(_challenge_of("Bearer", error if scheme == "bearer" else None))
    if required != "mtls":
        parts.append(_challenge_of("DPoP", error if scheme == "dpop" else None, algs))
    return ", ".join(parts)


async def authenticate(
    request: CanonicalRequest, settings: Settings, services: TokenServices, now: int
) -> Principal:
    """Establish the principal of ``request``; raise a 401 with its challenge."""
    values = request.headers.get("authorization", [])
    scheme = (
        _SCHEMES.get(values[0].strip().partition(" ")[0].lower()) if values else None
    )
    try:
        credential = presented_credential(
            request, max_bytes=settings.auth.max_token_bytes
        )
        return await _bound_principal(request, settings, services, credential, now)
    except Unauthenticated as refusal:
        _attach_challenge(refusal, request, settings, scheme)
        raise


def _attach_challenge(
    refusal: Unauthenticated,
    request: CanonicalRequest,
    settings: Settings,
    scheme: str | None,
) -> None:
    path = request.path[len(settings.gateway.fhir_base) :]
    refusal.headers["WWW-Authenticate"] = challenge(refusal, settings, path, scheme)
