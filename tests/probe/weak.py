"""A deliberately weak target: the real Kaitiaki gateway behind an ASGI
wrapper that gets exactly one thing wrong, chosen by a switch.

Each weakness answers like a careless API would (serving where it should
refuse, leaking where it should be quiet); the probe's matching check must
then fail. Two switches go the other way (``waf``, ``strict-request-context``)
and add a control the gateway is still growing, so those checks can be shown
to pass as well as fail. The wrapper also serves the authorisation server's
metadata for the ``as-*`` switches.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

FAKE_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": []}
LEAKY_BUNDLE = {
    "resourceType": "Bundle",
    "type": "searchset",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1"}},
        {"resource": {"resourceType": "Observation", "id": "o1"}},
    ],
}
MARKERS = (
    "'",
    "<",
    ">",
    "../",
    "..\\",
    "$(",
    "`",
    ";",
    "|",
    "union select",
    "javascript:",
)


@dataclass
class Incoming:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    @property
    def token(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    def jose(self) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = (self.token or "").split(".")
        try:
            return _b64json(parts[0]), _b64json(parts[1])
        except (IndexError, ValueError):
            return {}, {}


def _b64json(segment: str) -> dict[str, Any]:
    data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


@dataclass
class Weak:
    """The wrapper; ``weakness`` None is the hardened gateway unchanged."""

    inner: App
    weakness: str | None
    issuer: str
    audience: str
    kid: str
    metadata: dict[str, Any] = field(default_factory=dict)
    jwks: dict[str, Any] = field(default_factory=dict)
    log_file: Path | None = None
    throttled: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        body = await _read(receive)
        incoming = Incoming(
            scope["method"],
            unquote(scope["path"]),
            parse_qsl(scope.get("query_string", b"").decode("latin-1"), True),
            {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body,
        )
        if self.log_file is not None and self.weakness == "logs-tokens":
            with self.log_file.open("a") as log:
                log.write(f"{incoming.method} {incoming.path} {incoming.headers}\n")
        early = self.answer_early(incoming)
        if early is not None:
            await _respond(send, incoming, *early)
            return
        scope = self.rewrite(scope, incoming)
        if self.weakness == "accepts-dpop-replay":
            _forget_dpop_proofs(self.inner)
        status, headers, payload = await _call(self.inner, scope, body)
        status, headers, payload = self.alter(incoming, status, headers, payload)
        await _respond(send, incoming, status, payload, headers)

    # What the weak variants serve without asking the gateway ------------

    def answer_early(self, r: Incoming) -> tuple[int, Any, dict[str, str]] | None:
        if r.path.startswith("/.well-known/") and self.metadata:
            return 200, self.metadata, {}
        if r.path == "/jwks" and self.jwks:
            return 200, self.jwks, {}
        for name in (
            "token",
            "authorisation",
            "validation",
            "zero_trust",
            "added",
        ):
            found = getattr(self, f"_{name}")(r)
            if found is not None:
                return found  # type: ignore[no-any-return]
        return None

    def _token(self, r: Incoming) -> tuple[int, Any, dict[str, str]] | None:
        header, claims = r.jose()
        now = time.time()
        token = r.token
        served = {
            "anonymous-access": token is None and not r.path.endswith("/metadata"),
            "accepts-malformed": token is not None and token.count(".") != 2,
            "accepts-alg-none": str(header.get("alg", "")).lower() == "none",
            "accepts-hmac": str(header.get("alg", "")).startswith("HS"),
            "accepts-unknown-kid": bool(header) and header.get("kid") != self.kid,
            "accepts-expired": claims.get("exp", now + 1) < now,
            "accepts-not-yet-valid": claims.get("nbf", now) > now + 60,
            "accepts-wrong-audience": bool(claims)
            and claims.get("aud") != self.audience,
            "accepts-wrong-issuer": bool(claims) and claims.get("iss") != self.issuer,
            "accepts-oversized": token is not None and len(token) > 8192,
            "token-in-query": any(k == "access_token" for k, _ in r.query),
            "accepts-basic": r.headers.get("authorization", "").startswith("Basic"),
            "allows-trace": r.method == "TRACE",
            "cookie-session": "cookie" in r.headers and token is None,
            "trusts-internal-address": token is None
            and r.headers.get("x-real-ip") == "127.0.0.1",
        }
        if served.get(self.weakness or ""):
            return 200, FAKE_BUNDLE, {}
        if self.weakness == "unaudited-refusals" and token is None:
            outcome = {"resourceType": "OperationOutcome", "issue": []}
            return 401, outcome, {"www-authenticate": "Bearer"}
        return None

    def _authorisation(self, r: Incoming) -> tuple[int, Any, dict[str, str]] | None:
        query = "&".join(k for k, _ in r.query)
        if self.weakness == "ignores-write-scope" and r.method in (
            "POST",
            "PUT",
            "DELETE",
        ):
            return 201, {"resourceType": "Patient", "id": "x"}, {}
        if self.weakness == "ignores-type-scope" and r.path.endswith("/Observation"):
            return 200, FAKE_BUNDLE, {}
        if self.weakness == "include-leaks" and ("include" in query or "_has" in query):
            return 200, LEAKY_BUNDLE, {}
        if self.weakness == "batch-unchecked" and r.path.rstrip("/").endswith("/fhir"):
            batch = {"resourceType": "Bundle", "type": "batch-response"}
            batch["entry"] = [{"response": {"status": "200 OK"}}]  # type: ignore[assignment]
            return 200, batch, {}
        return None

    def _validation(self, r: Incoming) -> tuple[int, Any, dict[str, str]] | None:
        w = self.weakness
        if w == "stack-trace" and r.body and not _is_json(r.body):
            trace = 'Traceback (most recent call last):\n  File "app.py", line 7'
            return 500, trace, {"content-type": "text/plain"}
        accepted = {
            "accepts-duplicate-keys": r.body.count(b'"gender"') > 1,
            "crashes-on-nesting": r.body.count(b"[") > 1000,
            "trusts-body-type": b'"resourceType":"Observation"' in r.body,
            "skips-nhi-check": any(k == "identifier" for k, _ in r.query),
            "ignores-accept": "x-kaitiaki" in r.headers.get("accept", ""),
            "ignores-content-type": r.headers.get("content-type") == "text/plain",
            "no-body-limit": len(r.body) > 1024 * 1024,
            "ignores-unknown-parameters": any("unknown" in k for k, _ in r.query),
        }
        if accepted.get(w or ""):
            status = 500 if w == "crashes-on-nesting" else 200
            return status, FAKE_BUNDLE, {}
        return None

    def _zero_trust(self, r: Incoming) -> tuple[int, Any, dict[str, str]] | None:
        if self.weakness == "cors-reflect" and r.method == "OPTIONS":
            return 204, "", {}
        if self.weakness == "throttles-everyone" and self.throttled:
            return 429, {"resourceType": "OperationOutcome"}, {"retry-after": "5"}
        return None

    def _added(self, r: Incoming) -> tuple[int, Any, dict[str, str]] | None:
        """Controls the gateway is still growing, for the pass side of a check."""
        if self.weakness == "waf":
            text = (r.path + " " + " ".join(v for _, v in r.query)).lower()
            if any(marker in text for marker in MARKERS):
                return 403, {"resourceType": "OperationOutcome", "issue": []}, {}
        if self.weakness == "strict-request-context":
            value = r.headers.get("request-context")
            if value is not None and not _is_b64_json(value):
                return 400, {"resourceType": "OperationOutcome", "issue": []}, {}
        return None

    # Changes to what the gateway does ---------------------------------------

    def rewrite(self, scope: Scope, r: Incoming) -> Scope:
        override = r.headers.get("x-http-method-override")
        if self.weakness == "method-override" and override:
            headers = [
                (k, v) for k, v in scope["headers"] if k != b"x-http-method-override"
            ]
            return {**scope, "method": override.upper(), "headers": headers}
        return scope

    def alter(
        self, r: Incoming, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        w = self.weakness
        if status == 429:
            self.throttled = True
            if w == "never-throttles":
                return 200, [("content-type", "application/fhir+json")], b"{}"
            if w == "no-retry-after":
                headers = [(k, v) for k, v in headers if k != "retry-after"]
        headers = self.alter_headers(r, headers)
        if w == "echoes-input" and status >= 400:
            body = body[:-1] + b',"diagnostics":' + json.dumps(_echo(r)).encode() + b"}"
        host = r.headers.get("x-forwarded-host")
        if w == "honours-forwarded-host" and host:
            own = r.headers.get("host", "kaitiaki.test").encode()
            body = body.replace(b"kaitiaki.test", host.encode())
            body = body.replace(own, host.encode())
        return status, headers, body

    def alter_headers(
        self, r: Incoming, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        dropped = {
            "no-cache-control": ("cache-control", "pragma"),
            "no-challenge": ("www-authenticate",),
        }.get(self.weakness or "", ())
        headers = [(k, v) for k, v in headers if k not in dropped]
        if self.weakness == "sets-cookie":
            headers.append(("set-cookie", "session=abc123; Path=/"))
        if self.weakness == "version-banner":
            headers += [("server", "uvicorn/0.30.1"), ("x-powered-by", "Python/3.11")]
        if self.weakness == "cors-reflect" and "origin" in r.headers:
            headers += [
                ("access-control-allow-origin", r.headers["origin"]),
                ("access-control-allow-credentials", "true"),
            ]
        return headers


def _echo(r: Incoming) -> str:
    return f"{r.path}?{'&'.join(f'{k}={v}' for k, v in r.query)} {r.body[:200]!r}"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _is_b64_json(value: str) -> bool:
    try:
        return isinstance(json.loads(base64.b64decode(value, validate=True)), dict)
    except ValueError:
        return False


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _call(
    app: App, scope: Scope, body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = [(k.decode(), v.decode("latin-1")) for k, v in start.get("headers", [])]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, payload


async def _respond(
    send: Send, r: Incoming, status: int, payload: Any, headers: Any
) -> None:
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = json.dumps(payload).encode()
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {k for k, _ in pairs}
    if "content-type" not in names and body:
        pairs.append(("content-type", "application/fhir+json"))
    if "x-correlation-id" not in names and "x-correlation-id" in r.headers:
        pairs.append(("x-correlation-id", r.headers["x-correlation-id"]))
    pairs = [(k, v) for k, v in pairs if k != "content-length"]
    pairs.append(("content-length", str(len(body))))
    raw = [(k.encode(), v.encode("latin-1")) for k, v in pairs]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _forget_dpop_proofs(app: App) -> None:
    """The weakness of a gateway without a replay cache: every proof is new."""
    tokens = getattr(app, "tokens", None)
    replay = getattr(tokens, "replay", None)
    seen = getattr(replay, "_seen", None)
    if isinstance(seen, dict):
        seen.clear()
