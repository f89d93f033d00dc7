"""Real access tokens for the probe's clients, fetched through the probe's own
HTTP client (so the token endpoint is reached only when the profile names it)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from kaitiaki.errors import ProbeError
from kaitiaki.issuer.assertion import CLIENT_ASSERTION_TYPE
from kaitiaki.issuer.client import build_client_assertion
from kaitiaki.issuer.keys import load_private_key
from kaitiaki.probe.http import ProbeHttp
from kaitiaki.probe.profile import ClientProfile, resolve_secret

__all__ = ["IssuedToken", "TokenSource"]

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    token_type: str
    expires_in: int | None
    scope: str

    def __repr__(self) -> str:
        return f"IssuedToken(token_type={self.token_type!r}, scope={self.scope!r})"


class TokenSource:
    """Tokens per (role, scope), fetched once and kept for the run."""

    def __init__(
        self,
        http: ProbeHttp,
        clients: dict[str, ClientProfile],
        endpoint: Callable[[], str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http, self.clients, self.endpoint = http, clients, endpoint
        self.clock = clock
        self._tokens: dict[tuple[str, str | None], IssuedToken] = {}

    def has(self, role: str) -> bool:
        return role in self.clients

    def get(
        self,
        role: str,
        scope: str | None = None,
        *,
        extra: dict[str, str] | None = None,
    ) -> IssuedToken:
        key = (role, scope)
        if key not in self._tokens or extra:
            token = self._fetch(role, scope, extra or {})
            if extra:
                return token
            self._tokens[key] = token
        return self._tokens[key]

    def _form(self, client: ClientProfile, endpoint: str) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "client_id": client.client_id}
        if client.auth_method == "client_secret_post":
            secret = resolve_secret(client.secret or "")
            self.http.redactor.add_secret(secret)
            form["client_secret"] = secret
            return form
        key = load_private_key(Path(client.key_file or ""))
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = build_client_assertion(
            key,
            client.client_id,
            endpoint,
            now=int(self.clock()),
            jti=secrets.token_urlsafe(24),
        )
        return form

    def _fetch(
        self, role: str, scope: str | None, extra: dict[str, str]
    ) -> IssuedToken:
        client = self.clients.get(role)
        if client is None:
            raise ProbeError(f"the profile names no {role} client")
        endpoint = self.endpoint()
        form = self._form(client, endpoint)
        if scope or client.scope:
            form["scope"] = scope or client.scope or ""
        sent = self.http.send(
            "POST",
            endpoint,
            headers={"Content-Type": FORM, "Accept": "application/json", **extra},
            content=urlencode(form).encode(),
        )
        data = sent.json()
        if sent.status != 200 or not isinstance(data, dict):
            raise ProbeError(
                f"the token endpoint refused the {role} client ({client.client_id}): "
                f"HTTP {sent.status}"
            )
        return _issued(data)


def _issued(data: dict[str, Any]) -> IssuedToken:
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise ProbeError("the token response has no access_token")
    expires_in = data.get("expires_in")
    return IssuedToken(
        access_token=token,
        token_type=str(data.get("token_type", "Bearer")),
        expires_in=expires_in if isinstance(expires_in, int) else None,
        scope=str(data.get("scope", "")),
    )


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWS, unverified (for lifetime reporting only)."""
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        return {}
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
