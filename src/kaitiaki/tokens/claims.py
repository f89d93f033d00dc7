"""Registered-claim checks shared by JWT access tokens and introspection results.

Time rules, with ``leeway`` bounded by the settings (at most 60 s): ``exp``
is required and numeric, and must be in the future; ``nbf`` and ``iat``, when
present, must be numeric and not in the future; ``exp`` minus ``iat`` (or
minus ``nbf``, or minus now) must not exceed the maximum lifetime.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from kaitiaki.errors import ExpiredToken
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.compact import refuse
from kaitiaki.tokens.principal import Principal

__all__ = ["check_audience", "check_times", "principal_from"]

_CONFIRMATIONS = frozenset({"jkt", "x5t#S256"})
_MAX_TEXT = 2048
# The client id is sent upstream in Kaitiaki-Client-Id: no header value can
# hold a control character (a CR or LF would be a header of its own).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _number(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse(f"{name}_invalid")
    if abs(value) > 1e12:  # strict JSON already refused NaN and Infinity
        raise refuse(f"{name}_invalid")
    return int(value)


def check_times(
    claims: dict[str, Any], settings: AuthSettings, now: int, *, require_iat: bool
) -> int:
    """Check ``exp``, ``nbf``, ``iat`` and the lifetime; return ``exp``."""
    leeway = settings.leeway_seconds
    expires = _number(claims, "exp")
    not_before = _number(claims, "nbf")
    issued = _number(claims, "iat")
    if expires is None:
        raise refuse("exp_missing")
    if issued is None and require_iat:
        raise refuse("iat_missing")
    if expires + leeway <= now:
        raise ExpiredToken("The access token has expired.", detail="expired")
    if not_before is not None and not_before - leeway > now:
        raise refuse("not_yet_valid")
    if issued is not None and issued - leeway > now:
        raise refuse("issued_in_future")
    start = next((t for t in (issued, not_before) if t is not None), now)
    if expires - start > settings.max_token_lifetime_seconds:
        raise refuse("lifetime_too_long")
    return expires


def check_audience(claims: dict[str, Any], settings: AuthSettings) -> None:
    """``aud`` must be the configured audience or a list containing it."""
    audience = claims.get("aud")
    if isinstance(audience, str):
        if audience != settings.audience:
            raise refuse("aud_mismatch")
        return
    if not isinstance(audience, list) or settings.audience not in audience:
        raise refuse("aud_mismatch")


def _confirmation(claims: dict[str, Any]) -> tuple[str | None, str | None]:
    cnf = claims.get("cnf")
    if cnf is None:
        return None, None
    # A binding we cannot check would be a token nobody can constrain.
    if not isinstance(cnf, dict) or not cnf or set(cnf) - _CONFIRMATIONS:
        raise refuse("cnf_unsupported")
    jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")
    for value in (jkt, x5t):
        if value is not None and (not isinstance(value, str) or len(value) > 128):
            raise refuse("cnf_invalid")
    return jkt, x5t


def _scope(
    claims: dict[str, Any], role_scopes: Mapping[str, str], *, app_only: bool
) -> str:
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, list) and all(isinstance(item, str) for item in scope):
        scope = " ".join(scope)
    if not isinstance(scope, str):
        raise refuse("scope_invalid")
    if role_scopes and app_only:
        scope = " ".join(filter(None, (scope, *_role_scopes(claims, role_scopes))))
    if len(scope) > 8 * _MAX_TEXT:
        raise refuse("scope_invalid")
    return scope


def _role_scopes(claims: dict[str, Any], role_scopes: Mapping[str, str]) -> list[str]:
    """The SMART scopes the operator maps the token's ``roles`` to (Entra ID
    application permissions); roles without a mapping grant nothing.

    Only for tokens with no end user: Entra ID also lists app roles assigned
    to a user in that user's delegated tokens, and those must not widen the
    user's ``scp`` to the application's scopes."""
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise refuse("roles_invalid")
    return [role_scopes[role] for role in roles if role in role_scopes]


def principal_from(
    claims: dict[str, Any],
    settings: AuthSettings,
    expires: int,
    token_format: Literal["jwt", "opaque"],
) -> Principal:
    """Build the principal from checked claims (client, subject, scope, cnf)."""
    client_id = claims.get("client_id", claims.get("azp"))
    subject = claims.get("sub", client_id)
    if not isinstance(client_id, str) or not isinstance(subject, str):
        raise refuse("client_missing")
    if not client_id or len(client_id) > _MAX_TEXT or len(subject) > _MAX_TEXT:
        raise refuse("client_invalid")
    if _CONTROL.search(client_id):
        raise refuse("client_invalid")
    token_id = claims.get("jti")
    jkt, x5t = _confirmation(claims)
    app_only = _is_client_credentials(claims, client_id)
    return Principal(
        issuer=settings.issuer,
        subject=subject,
        client_id=client_id,
        scope=_scope(claims, settings.role_scopes, app_only=app_only),
        token_id=token_id if isinstance(token_id, str) else None,
        expires_at=expires,
        jkt=jkt,
        x5t_s256=x5t,
        token_format=token_format,
        claims=MappingProxyType(claims),
        patient=_text(claims, "patient"),
        acr=_text(claims, "acr"),
        client_credentials=app_only,
    )


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _is_client_credentials(claims: dict[str, Any], client_id: str) -> bool:
    """No end user: a grant-type claim says so, or ``sub`` is absent or the client.

    Keycloak names a client's service account ``service-account-<client>``;
    Entra ID marks app-only tokens with the optional claim ``idtyp`` ``app``.
    """
    grant = _text(claims, "gty") or _text(claims, "grant_type")
    if grant is not None:
        return grant in ("client_credentials", "client-credentials")
    kind = _text(claims, "idtyp")
    if kind is not None:
        return kind == "app"
    subject = _text(claims, "sub")
    username = _text(claims, "preferred_username") or ""
    return (
        subject is None
        or subject == client_id
        or username.startswith("service-account-")
    )
