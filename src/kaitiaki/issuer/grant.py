"""The client credentials grant (RFC 6749 §4.4), introspection (RFC 7662)
and revocation (RFC 7009), as decisions over a parsed form, the issuer state
and ``now``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kaitiaki.errors import InvalidToken
from kaitiaki.issuer.assertion import (
    CLIENT_ASSERTION_TYPE,
    ReplayCache,
    verify_client_assertion,
)
from kaitiaki.issuer.refusals import (
    InvalidClient,
    InvalidDpopProof,
    InvalidRequest,
    InvalidTarget,
    TemporarilyUnavailable,
    UnsupportedGrantType,
)
from kaitiaki.issuer.state import IssuerState, RegisteredClient
from kaitiaki.issuer.tokens import (
    access_token_claims,
    grant_scopes,
    introspect_token,
    sign_access_token,
)
from kaitiaki.settings import DevIssuerSettings, DpopSettings
from kaitiaki.tokens.dpop import verify_proof

__all__ = ["Issuer", "Revocations", "authenticate_client"]

Form = Mapping[str, str]


def authenticate_client(
    form: Form,
    state: IssuerState,
    *,
    audiences: Collection[str],
    now: int,
    replay_cache: ReplayCache,
) -> RegisteredClient:
    """The client that authenticated the request with ``private_key_jwt``."""
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if assertion_type is None and assertion is None:
        raise InvalidClient("client authentication with private_key_jwt is required")
    if assertion_type != CLIENT_ASSERTION_TYPE:
        raise InvalidClient("only private_key_jwt client authentication is supported")
    if not assertion:
        raise InvalidClient("the client assertion is missing")

    client = verify_client_assertion(
        assertion,
        state.clients,
        audiences=audiences,
        now=now,
        replay_cache=replay_cache,
    )
    if form.get("client_id", client.client_id) != client.client_id:
        raise InvalidClient("client_id does not match the client assertion")
    return client


class Revocations:
    """The ``jti`` of each revoked access token, kept until the token's ``exp``.

    Bounded: expired entries are dropped when it is full, and when it is still
    full a revocation is refused (503) rather than an older one forgotten.
    Each client holds at most ``per_client`` entries (a tenth by default), so
    one client revoking token after token cannot use up the others' room.
    """

    def __init__(self, capacity: int = 100_000, per_client: int | None = None) -> None:
        self.capacity = capacity
        self.per_client = per_client or max(1, capacity // 10)
        self._revoked: dict[str, tuple[int, str]] = {}
        self._held: Counter[str] = Counter()

    def __contains__(self, jti: object) -> bool:
        return jti in self._revoked

    def revoke(self, jti: str, exp: int, *, now: int, client_id: str) -> None:
        if jti in self._revoked:
            return
        if (
            len(self._revoked) >= self.capacity
            or self._held[client_id] >= self.per_client
        ):
            self._revoked = {j: v for j, v in self._revoked.items() if v[0] > now}
            self._held = Counter(client for _, client in self._revoked.values())
        if self._held[client_id] >= self.per_client:
            raise TemporarilyUnavailable("this client has too many revocations")
        if len(self._revoked) >= self.capacity:
            raise TemporarilyUnavailable("too many revoked tokens in flight")
        self._revoked[jti] = (exp, client_id)
        self._held[client_id] += 1


@dataclass(frozen=True)
class Issuer:
    """One issuer instance: settings, keys, registry, its replay cache and the
    tokens revoked so far (both shared by copies made on key rotation)."""

    settings: DevIssuerSettings
    state: IssuerState
    replay_cache: ReplayCache
    revocations: Revocations = field(default_factory=Revocations)

    @property
    def token_endpoint(self) -> str:
        return f"{self.settings.url}/token"

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.settings.url}/introspect"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.settings.url}/revoke"

    def _authenticate(self, form: Form, endpoint: str, now: int) -> RegisteredClient:
        audiences = {self.settings.url, self.token_endpoint, endpoint}
        return authenticate_client(
            form,
            self.state,
            audiences=audiences,
            now=now,
            replay_cache=self.replay_cache,
        )

    def _check_target(self, form: Form) -> str:
        """The audience of the token: the API's, or the admin plane's on request."""
        served = {self.settings.audience, self.settings.admin_audience}
        audience = self.settings.audience
        for name in ("resource", "audience"):
            value = form.get(name)
            if value is not None and value not in served:
                raise InvalidTarget(f"the requested {name} is not served here")
            audience = value or audience
        return audience

    def _dpop_key(self, proofs: list[str], now: int) -> str | None:
        """The thumbprint of the key a DPoP proof demonstrates (RFC 9449 §5)."""
        if not proofs:
            return None
        if len(proofs) > 1:
            raise InvalidDpopProof("only one DPoP proof may be sent")
        settings = DpopSettings()
        try:
            proof = verify_proof(
                proofs[0],
                settings,
                method="POST",
                url=self.token_endpoint,
                access_token=None,
                now=now,
                leeway=30,
            )
        except InvalidToken as exc:
            raise InvalidDpopProof("the DPoP proof is not valid") from exc
        expires = now + settings.max_age_seconds + 60
        try:
            self.replay_cache.remember("dpop:" + proof.jkt, proof.jti, expires, now=now)
        except InvalidClient as exc:
            raise InvalidDpopProof("the DPoP proof was already used") from exc
        return proof.jkt

    def issue(
        self, form: Form, *, now: int, jti: str, dpop: list[str] | None = None
    ) -> dict[str, Any]:
        """The RFC 6749 §5.1 token response for a client credentials request;
        with a DPoP proof the token is bound to its key (``cnf.jkt``)."""
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        if grant_type != "client_credentials":
            raise UnsupportedGrantType("only client_credentials is supported")

        client = self._authenticate(form, self.token_endpoint, now)
        scopes = grant_scopes(form.get("scope"), client.scopes)
        audience = self._check_target(form)
        jkt = self._dpop_key(dpop or [], now)

        lifetime = self.settings.token_lifetime_seconds
        claims = access_token_claims(
            issuer=self.settings.url,
            audience=audience,
            client_id=client.client_id,
            scopes=scopes,
            now=now,
            lifetime=lifetime,
            jti=jti,
        )
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        return {
            "access_token": sign_access_token(self.state.signing_key, claims),
            "token_type": "Bearer" if jkt is None else "DPoP",
            "expires_in": lifetime,
            "scope": claims["scope"],
        }

    def introspect(self, form: Form, *, now: int) -> dict[str, Any]:
        """The RFC 7662 response, for an authenticated client only."""
        self._authenticate(form, self.introspection_endpoint, now)
        token = form.get("token")
        if not token:
            raise InvalidRequest("token is required")
        result = self._active(token, now)
        if result["active"] and result.get("jti") in self.revocations:
            return {"active": False}
        return result

    def _active(self, token: str, now: int) -> dict[str, Any]:
        # Tokens signed before a rotation stay active during its overlap.
        result: dict[str, Any] = {"active": False}
        for key in (self.state.signing_key, *self.state.retired_keys):
            result = introspect_token(token, key, issuer=self.settings.url, now=now)
            if result["active"]:
                break
        return result

    def revoke(self, form: Form, *, now: int) -> bool:
        """RFC 7009: revoke an access token issued to the authenticated client.

        Unknown, expired, malformed and refresh-token values are answered as
        revoked (§2.2: the client cannot tell them apart). A token issued to
        another client is left active and answered the same way: refusing it
        (as §2.1 allows) would tell the caller that a token it holds is live.
        Returns whether a token was revoked."""
        client = self._authenticate(form, self.revocation_endpoint, now)
        token = form.get("token")
        if not token:
            raise InvalidRequest("token is required")
        claims = self._active(token, now)
        jti, exp = claims.get("jti"), claims.get("exp")
        if not claims["active"] or not isinstance(jti, str) or not isinstance(exp, int):
            return False
        if claims.get("client_id") != client.client_id:
            return False
        self.revocations.revoke(jti, exp, now=now, client_id=client.client_id)
        return True

    def metadata(self) -> dict[str, Any]:
        """Authorisation server metadata (RFC 8414, OIDC Discovery)."""
        url = self.settings.url
        scopes = sorted({s for c in self.state.clients.values() for s in c.scopes})
        auth_algs = ["ES256", "ES384", "EdDSA", "PS256"]
        return {
            "issuer": url,
            "jwks_uri": f"{url}/jwks",
            "token_endpoint": self.token_endpoint,
            "introspection_endpoint": self.introspection_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": auth_algs,
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
            "introspection_endpoint_auth_signing_alg_values_supported": auth_algs,
            "revocation_endpoint": self.revocation_endpoint,
            "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
            "revocation_endpoint_auth_signing_alg_values_supported": auth_algs,
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": scopes,
            "code_challenge_methods_supported": ["S256"],
            "dpop_signing_alg_values_supported": list(DpopSettings().algorithms),
        }
