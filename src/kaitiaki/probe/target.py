"""The system under test as the checks see it: URLs, tokens, discovery
documents, and the record of what the probe sent (for the logging checks)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kaitiaki.errors import ProbeError
from kaitiaki.probe.forge import Forger
from kaitiaki.probe.http import ProbeHttp, Sent
from kaitiaki.probe.profile import Profile
from kaitiaki.probe.tokens import TokenSource

__all__ = ["Target"]

FHIR_JSON = "application/fhir+json"
_ANONYMOUS = object()

# The Request-Context userRole of a system (machine-to-machine) context.
_SYSTEM_ROLE = "110150"


@dataclass
class Target:
    base_url: str
    profile: Profile
    http: ProbeHttp
    clock: Callable[[], float] = time.time
    canaries: set[str] = field(default_factory=set)
    refusals: list[tuple[str, int]] = field(default_factory=list)
    unmatched_refusals: int = 0
    memo: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.tokens = TokenSource(
            self.http, dict(self.profile.clients), self.token_endpoint, clock=self.clock
        )

    @property
    def now(self) -> int:
        return int(self.clock())

    @property
    def is_https(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"

    @property
    def audience(self) -> str:
        return self.profile.auth.audience or self.base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def token(self, role: str = "reader", scope: str | None = None) -> str:
        token = self.tokens.get(role, scope).access_token
        self.canaries.add(token)
        self.http.redactor.add_secret(token)
        return token

    def context_header(self, role: str = "reader") -> dict[str, str]:
        """The profile's Request-Context; a system context (userRole 110150)
        names the client whose token goes with it, as the standard requires."""
        context = self.profile.request_context
        if context is None:
            return {}
        client = self.profile.clients.get(role)
        if context.get("userRole") == _SYSTEM_ROLE and client is not None:
            context = {**context, "userIdentifier": client.client_id}
        name = context.get("userFullName")
        if isinstance(name, str):
            self.canaries.add(name)
        raw = json.dumps(context, separators=(",", ":")).encode()
        return {self.profile.request_context_header: base64.b64encode(raw).decode()}

    def request(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "reader",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        burst: bool = False,
    ) -> Sent:
        """A request to ``BASE/path``: with ``role``'s token unless ``token`` is
        given or ``role`` is None (anonymous)."""
        sent_headers = {"Accept": FHIR_JSON}
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        elif role is not None:
            sent_headers["Authorization"] = f"Bearer {self.token(role)}"
            sent_headers.update(self.context_header(role))
        sent_headers.update(headers or {})
        sent = self.http.send(
            method, self.url(path), headers=sent_headers, content=body, burst=burst
        )
        if 400 <= sent.status < 500:
            # Only a refusal that echoes the probe's correlation id can be found
            # in an audit export; the others are counted, not matched.
            if sent.headers.get("x-correlation-id") == sent.correlation_id:
                self.refusals.append((sent.correlation_id, sent.status))
            else:
                self.unmatched_refusals += 1
        return sent

    # Discovery -----------------------------------------------------------

    def discovery(self) -> dict[str, Any] | None:
        """The authorisation server's metadata (OIDC, then RFC 8414)."""
        if "discovery" not in self.memo:
            self.memo["discovery"] = self._fetch_discovery()
        found: dict[str, Any] | None = self.memo["discovery"]
        return found

    def _fetch_discovery(self) -> dict[str, Any] | None:
        auth = self.profile.auth
        issuer = auth.issuer.rstrip("/")
        urls = (
            [auth.discovery_url]
            if auth.discovery_url
            else [
                f"{issuer}/.well-known/openid-configuration",
                f"{issuer}/.well-known/oauth-authorization-server",
            ]
        )
        for url in urls:
            if url is None:
                continue
            sent = self.http.send("GET", url, headers={"Accept": "application/json"})
            self.memo.setdefault("discovery_sent", sent)
            data = sent.json()
            if sent.status == 200 and isinstance(data, dict):
                self.memo["discovery_sent"] = sent
                return data
        return None

    def token_endpoint(self) -> str:
        if self.profile.auth.token_endpoint:
            return self.profile.auth.token_endpoint
        endpoint = (self.discovery() or {}).get("token_endpoint")
        if not isinstance(endpoint, str):
            raise ProbeError(
                "no token endpoint: set auth.token_endpoint in the profile"
            )
        return endpoint

    def jwks(self) -> list[dict[str, Any]]:
        if "jwks" not in self.memo:
            self.memo["jwks"] = self._fetch_jwks()
        keys: list[dict[str, Any]] = self.memo["jwks"]
        return keys

    def _fetch_jwks(self) -> list[dict[str, Any]]:
        uri = (self.discovery() or {}).get("jwks_uri")
        if not isinstance(uri, str):
            return []
        sent = self.http.send("GET", uri, headers={"Accept": "application/json"})
        self.memo["jwks_sent"] = sent
        data = sent.json()
        keys = data.get("keys") if isinstance(data, dict) else None
        return (
            [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
        )

    def forger(self) -> Forger:
        if "forger" not in self.memo:
            kids = [k.get("kid") for k in self.jwks() if isinstance(k.get("kid"), str)]
            self.memo["forger"] = Forger(
                self.profile.auth.issuer, self.audience, kids[0] if kids else None
            )
        forger: Forger = self.memo["forger"]
        return forger

    def capability(self) -> dict[str, Any] | None:
        if "capability" not in self.memo:
            sent = self.request("GET", "metadata", role=None)
            data = sent.json()
            ok = (
                sent.status == 200
                and isinstance(data, dict)
                and data.get("resourceType") == "CapabilityStatement"
            )
            self.memo["capability"] = data if ok else None
        found: dict[str, Any] | None = self.memo["capability"]
        return found

    def resource_types(self) -> list[str]:
        routes = self.profile.routes
        if routes.resource_types:
            return list(routes.resource_types)
        types: list[str] = []
        for rest in (self.capability() or {}).get("rest", []) or []:
            for resource in rest.get("resource", []) or []:
                if isinstance(resource, dict) and isinstance(resource.get("type"), str):
                    types.append(resource["type"])
        return types or ["Patient"]

    @property
    def read_type(self) -> str:
        return self.profile.routes.read_type or self.resource_types()[0]

    @property
    def other_type(self) -> str:
        if self.profile.routes.other_type:
            return self.profile.routes.other_type
        others = [t for t in self.resource_types() if t != self.read_type]
        return others[0] if others else "Observation"

    def search_parameter(self) -> str:
        """A search parameter of the read type that serves a benign value, so a
        refusal of an attack marker in it is the filter's doing."""
        if "search_parameter" not in self.memo:
            self.memo["search_parameter"] = self._find_search_parameter()
        found: str = self.memo["search_parameter"]
        return found

    def _candidates(self) -> list[str]:
        if self.profile.routes.search_parameter:
            return [self.profile.routes.search_parameter]
        ranked: list[tuple[int, str]] = []
        for rest in (self.capability() or {}).get("rest", []) or []:
            for resource in rest.get("resource", []) or []:
                if (
                    not isinstance(resource, dict)
                    or resource.get("type") != self.read_type
                ):
                    continue
                for param in resource.get("searchParam", []) or []:
                    kind, name = param.get("type"), param.get("name")
                    if isinstance(name, str) and not name.startswith("_"):
                        ranked.append((0 if kind == "string" else 1, name))
        return [name for _, name in sorted(ranked)][:3] or ["name", "family", "_id"]

    def _find_search_parameter(self) -> str:
        for name in self._candidates():
            sent = self.request("GET", f"{self.read_type}?{name}=kaitiaki&_count=1")
            if 200 <= sent.status < 300:
                return name
        raise ProbeError(
            f"no search parameter of {self.read_type} serves a benign value; name "
            "one in routes.search_parameter"
        )

    @property
    def read_path(self) -> str:
        return f"{self.read_type}?_count=1"
