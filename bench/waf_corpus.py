"""The two corpora of the WAF benchmark, read from ../shared/data.

* ``crs_cases``: the OWASP CRS regression tests (go-ftw YAML), one
  :class:`Case` per test whose first stage expects a rule to fire (an attack)
  or names only rules that must not fire (CRS's own benign checks).
* ``fhir_requests``: valid FHIR traffic from the NZ example corpus: every
  resource as a create and (with an id) an update, every Bundle entry
  resource as a create, every line of searches.txt as a GET search and, with
  a query, again as a POST ``_search``.

``for_kaitiaki`` maps a CRS test onto the FHIR API the gateway serves: the
payload stays byte for byte where the test put it (query, form body, JSON
string, header), only the path becomes a FHIR route.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CRS = DATA / "crs-regression"
FHIR = DATA / "fhir-nz-examples"
_TRIVIAL_PATHS = {"", "/", "/post", "/get", "/index.html", "/test", "/anything"}
_CRS_ACCEPT = "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9"


@dataclass
class Wire:
    """One HTTP request as sent on the wire (raw bytes when ``raw`` is set)."""

    method: str = "GET"
    target: str = "/"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    raw: bytes | None = None
    http_version: str = "HTTP/1.1"

    def encode(self, host: str) -> bytes:
        if self.raw is not None:
            return self.raw
        lines = [f"{self.method} {self.target} {self.http_version}"]
        names = {name.lower() for name, _ in self.headers}
        if "host" not in names:
            lines.append(f"Host: {host}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: close")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


@dataclass
class Case:
    category: str
    name: str
    attack: bool
    wire: Wire
    not_applicable: str | None = None


def _body(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, list):
        data = "\r\n".join(str(line) for line in data)
    return str(data).encode("utf-8", "surrogateescape")


def _wire(stage: dict[str, Any]) -> Wire:
    if "encoded_request" in stage:
        return Wire(raw=base64.b64decode(stage["encoded_request"]))
    headers = [
        (str(k), str(v))
        for k, v in (stage.get("headers") or {}).items()
        if str(k).lower() not in ("content-length", "connection")
    ]
    return Wire(
        method=str(stage.get("method", "GET")),
        target=str(stage.get("uri", "/")),
        headers=headers,
        body=_body(stage.get("data")),
        http_version=str(stage.get("version", "HTTP/1.1")),
    )


def crs_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CRS.glob("REQUEST-*/*.yaml")):
        document = yaml.safe_load(path.read_text("utf-8")) or {}
        for test in document.get("tests") or []:
            stage = test["stages"][0]
            log = (stage.get("output") or {}).get("log") or {}
            name = f"{path.stem}-{test.get('test_id', '?')}"
            wire = _wire(stage.get("input") or {})
            attack = bool(log.get("expect_ids"))
            cases.append(Case(path.parent.name, name, attack, wire))
    return cases


def _content_type(wire: Wire) -> str:
    for name, value in wire.headers:
        if name.lower() == "content-type":
            return value.split(";")[0].strip().lower()
    return ""


def _reason(wire: Wire) -> str | None:
    """Why a CRS test cannot be replayed as FHIR traffic, or None."""
    if wire.raw is not None:
        return "raw request bytes for a non-FHIR path (sent unchanged)"
    if wire.http_version not in ("HTTP/1.1", "HTTP/1.0"):
        return "HTTP version the listener does not speak (sent unchanged)"
    kind = _content_type(wire)
    if wire.body and kind not in (
        "",
        "application/x-www-form-urlencoded",
        "application/json",
    ):
        return f"body media type {kind or '(none)'}: a FHIR JSON API refuses it (415)"
    return None


def _escape(raw: bytes) -> bytes:
    """Percent-encode what a real client would (space, controls, non-ASCII),
    keeping every existing escape: the payload itself is unchanged."""
    return b"".join(
        bytes([byte]) if 0x21 <= byte <= 0x7E else b"%%%02X" % byte for byte in raw
    )


def _fhir_target(target: str) -> str:
    parts = urlsplit(target)
    path = parts.path
    base = "/fhir/Patient"
    if path not in _TRIVIAL_PATHS:
        base += path if path.startswith("/") else "/" + path
    query = _escape(parts.query.encode("utf-8", "surrogateescape")).decode()
    return _escape(base.encode("utf-8", "surrogateescape")).decode() + (
        "?" + query if query else ""
    )


def for_kaitiaki(case: Case, token: str) -> Case:
    """The same test aimed at the FHIR API, with a valid token."""
    wire = case.wire
    reason = _reason(wire)
    if reason is not None:
        return Case(case.category, case.name, case.attack, wire, reason)
    headers = [
        (name, value)
        for name, value in wire.headers
        if name.lower() not in ("content-type", "accept")
        or (name.lower() == "accept" and not value.startswith(_CRS_ACCEPT))
    ]
    if not any(name.lower() == "accept" for name, _ in headers):
        headers.append(("Accept", "application/fhir+json"))
    headers.append(("Authorization", f"Bearer {token}"))
    method, target, body = wire.method, _fhir_target(wire.target), wire.body
    if body and _content_type(wire) == "application/json":
        method, target, body = "POST", "/fhir/Patient", _json_resource(body)
        headers.append(("Content-Type", "application/fhir+json"))
    elif body:
        method, body = "POST", _escape(body.replace(b"\r\n", b"&"))
        target = (
            target.split("?")[0].rstrip("/")
            + "/_search"
            + ("?" + target.split("?", 1)[1] if "?" in target else "")
        )
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    fhir = Wire(method, target, headers, body, http_version=wire.http_version)
    return Case(case.category, case.name, case.attack, fhir)


def _json_resource(body: bytes) -> bytes:
    try:
        value = json.loads(body)
    except ValueError:
        return body
    resource = value if isinstance(value, dict) else {"extension": value}
    return json.dumps({**resource, "resourceType": "Patient"}).encode()


def fhir_requests(token: str) -> list[Wire]:
    auth = [("Authorization", f"Bearer {token}"), ("Accept", "application/fhir+json")]
    body_headers = [*auth, ("Content-Type", "application/fhir+json")]
    requests: list[Wire] = []
    for path in sorted(FHIR.glob("*/*.json")):
        resource = json.loads(path.read_text("utf-8"))
        kind, rid = resource["resourceType"], resource.get("id")
        raw = json.dumps(resource).encode()
        requests.append(Wire("POST", f"/fhir/{kind}", body_headers, raw))
        if rid:
            requests.append(Wire("PUT", f"/fhir/{kind}/{rid}", body_headers, raw))
        for entry in resource.get("entry") or []:
            inner = entry.get("resource")
            if isinstance(inner, dict) and "resourceType" in inner:
                data = json.dumps(inner).encode()
                target = f"/fhir/{inner['resourceType']}"
                requests.append(Wire("POST", target, body_headers, data))
    form = [*auth, ("Content-Type", "application/x-www-form-urlencoded")]
    for line in (FHIR / "searches.txt").read_text("utf-8").splitlines():
        method, _, target = line.strip().partition(" ")
        if not target:
            continue
        requests.append(Wire(method, target, auth))
        path, _, query = target.partition("?")
        if query and path.count("/") == 2:
            requests.append(Wire("POST", path + "/_search", form, query.encode()))
    return requests
