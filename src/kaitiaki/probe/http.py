"""The probe's only way onto the network: an HTTP client that reaches nothing
but the allowed origins, sends only allowed methods, and stays inside the
profile's request budget and rate."""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from kaitiaki.errors import BudgetSpent, OutOfScope, ProbeError
from kaitiaki.probe.model import Exchange
from kaitiaki.probe.redact import Redactor

__all__ = ["ProbeHttp", "Sent", "origin_of"]

logger = logging.getLogger("kaitiaki.probe.http")

# TRACE only asks the server to reflect the request; it changes nothing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "TRACE"})
DESTRUCTIVE_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
MAX_RESPONSE_BYTES = 256 * 1024


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutOfScope(f"not an absolute http(s) URL: {url[:80]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname.lower(), port


@dataclass(frozen=True, slots=True)
class Sent:
    """A response as the checks see it, and the redacted evidence of it."""

    status: int
    headers: httpx.Headers
    body: bytes
    exchange: Exchange
    correlation_id: str

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> object:
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Budget:
    max_requests: int
    min_interval: float
    sent: int = 0
    last: float = field(default=-1e9)


class ProbeHttp:
    """Sends requests for the checks and keeps every exchange for the report."""

    def __init__(
        self,
        allowed_origins: Iterable[str],
        *,
        redactor: Redactor,
        max_requests: int,
        rate_per_second: float,
        allow_destructive: bool = False,
        timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
        user_agent: str = "kaitiaki-probe",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.allowed = frozenset(origin_of(url) for url in allowed_origins)
        self.redactor = redactor
        self.budget = Budget(max_requests, 1.0 / rate_per_second)
        self.methods = SAFE_METHODS | (
            DESTRUCTIVE_METHODS if allow_destructive else set()
        )
        self.clock, self.sleep = clock, sleep
        self.seen: list[Sent] = []
        self._client = httpx.Client(
            headers={"User-Agent": user_agent},
            timeout=timeout,
            follow_redirects=False,
            verify=tls or ssl.create_default_context(),
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def check_allowed(self, method: str, url: str) -> None:
        """Raise :class:`OutOfScope` unless the profile allows this request."""
        if origin_of(url) not in self.allowed:
            raise OutOfScope(
                f"refusing to contact {urlsplit(url).netloc}: only the probed base "
                "URL and the profile's token endpoint may be reached"
            )
        if method.upper() not in self.methods:
            raise OutOfScope(
                f"refusing to send {method.upper()}: the profile does not allow "
                "destructive methods (safety.allow_destructive)"
            )

    def _pace(self, burst: bool) -> None:
        if self.budget.sent >= self.budget.max_requests:
            raise BudgetSpent(
                f"the request budget of {self.budget.max_requests} is spent "
                "(safety.max_requests)"
            )
        if not burst:
            wait = self.budget.last + self.budget.min_interval - self.clock()
            if wait > 0:
                self.sleep(wait)
        self.budget.sent += 1
        self.budget.last = self.clock()

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        burst: bool = False,
    ) -> Sent:
        """Send one request; ``burst`` skips pacing (never the budget)."""
        self.check_allowed(method, url)
        self._pace(burst)
        sent_headers = dict(headers or {})
        correlation = sent_headers.setdefault("X-Correlation-Id", str(uuid.uuid4()))
        request = self._client.build_request(
            method, url, headers=sent_headers, content=content
        )
        try:
            response = self._client.send(request, stream=True)
            try:
                body = _read_bounded(response)
            finally:
                response.close()
                # Stateless: a cookie the target set is never sent back, so
                # no check rides on the session another check was given.
                self._client.cookies.clear()
        except httpx.HTTPError as exc:
            raise ProbeError(
                f"{method} {urlsplit(url).path} failed: {type(exc).__name__}"
            ) from exc
        sent = Sent(
            response.status_code,
            response.headers,
            body,
            self._evidence(request, content, response, body),
            correlation,
        )
        self.seen.append(sent)
        return sent

    def _evidence(
        self,
        request: httpx.Request,
        content: bytes | None,
        response: httpx.Response,
        body: bytes,
    ) -> Exchange:
        redact = self.redactor
        request_body = None
        if content:
            request_body = redact.body(content[:2048])
            if len(content) > 2048:
                request_body = f"({len(content)} bytes) " + (request_body or "")[:300]
        return Exchange(
            method=request.method,
            url=redact.url(str(request.url)),
            request_headers=redact.headers(
                (k, v) for k, v in request.headers.multi_items() if k != "host"
            ),
            request_body=request_body,
            status=response.status_code,
            response_headers=redact.headers(response.headers.multi_items()),
            response_body=redact.body(body),
        )


def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]
