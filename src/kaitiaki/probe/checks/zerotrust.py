"""Requirement 6, zero trust: no sessions or cookies, nothing trusted for its
network location or client-set forwarding headers, no method override, no
credentialed CORS for foreign origins."""

from __future__ import annotations

from collections.abc import Callable

from kaitiaki.probe.checks.common import fail, passed, status_outcome
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import Target

__all__ = ["CHECKS"]

ZT = (
    "HNZAS_SHOULD_ALWAYS_AUTHENTICATE_ZT_ARCH",
    "HNZAS_SHOULD_APPLY_TRANSACTION_LEVEL_VERIFICATION_ZT_ARCH",
)
FOREIGN = "attacker.example"
FOREIGN_ORIGIN = f"https://{FOREIGN}"


def _no_set_cookie(target: Target) -> Outcome:
    target.request("GET", "metadata", role=None)
    target.request("GET", target.read_path)
    target.request("GET", target.read_path, role=None)
    seen = [s for s in target.http.seen if s.exchange.url.startswith(target.base_url)]
    with_cookie = [s for s in seen if "set-cookie" in s.headers]
    if with_cookie:
        return fail(
            f"{len(with_cookie)} of {len(seen)} responses set a cookie", with_cookie[0]
        )
    return passed(f"none of {len(seen)} responses from the API set a cookie")


def _cookie_only(target: Target) -> Outcome:
    cookies = [
        value.split(";", 1)[0]
        for sent in target.http.seen
        for value in sent.headers.get_list("set-cookie")
    ]
    cookie = "; ".join(dict.fromkeys(cookies)) or "session=kaitiaki-probe"
    sent = target.request(
        "GET", target.read_path, role=None, headers={"Cookie": cookie}
    )
    return status_outcome([sent], {400, 401}, "a request carrying only cookies")


def _spoof_anonymous(target: Target) -> Outcome:
    headers = {
        "X-Forwarded-For": "127.0.0.1",
        "X-Real-IP": "127.0.0.1",
        "X-Client-IP": "10.0.0.1",
        "X-Forwarded-Host": FOREIGN,
        "Forwarded": f"for=127.0.0.1;host={FOREIGN};proto=https",
    }
    sent = target.request("GET", target.read_path, role=None, headers=headers)
    return status_outcome([sent], {400, 401, 403}, "internal-looking source, no token")


def _spoof_links(target: Target) -> Outcome:
    headers = {
        "X-Forwarded-Host": FOREIGN,
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Prefix": "/evil",
        "Forwarded": f"host={FOREIGN};proto=http",
    }
    sent = target.request("GET", target.read_path, headers=headers)
    if 400 <= sent.status < 500:
        return passed(f"client forwarding headers refused (HTTP {sent.status})", sent)
    header_text = " ".join(v for _, v in sent.headers.multi_items())
    if FOREIGN in sent.text() or FOREIGN in header_text:
        return fail("links in the response follow a client-set X-Forwarded-Host", sent)
    if sent.status >= 500:
        return fail(f"forwarding headers caused HTTP {sent.status}", sent)
    return passed("client forwarding headers did not change links or routing", sent)


def _method_override(target: Target) -> Outcome:
    sents = [
        target.request("GET", target.read_path, headers={name: verb})
        for name, verb in (
            ("X-HTTP-Method-Override", "HEAD"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Method-Override", "PUT"),
        )
    ]
    served = [s for s in sents if not 400 <= s.status < 500]
    if served:
        return fail(
            f"a method-override header was not refused (HTTP {served[0].status})",
            served[0],
        )
    return passed("every method-override header was refused", *sents)


def _unlisted_methods(target: Target) -> Outcome:
    sents = [
        target.request(method, target.read_path)
        for method in ("TRACE", "PATCH")
        if method in target.http.methods
    ]
    served = [s for s in sents if 200 <= s.status < 300]
    if served:
        return fail(f"{served[0].exchange.method} was served", served[0])
    if any(s.status >= 500 for s in sents):
        return fail("an unlisted method caused a server error", *sents)
    return passed("methods outside the API's list are refused", *sents)


def _cors(target: Target) -> Outcome:
    preflight = target.request(
        "OPTIONS",
        target.read_path,
        role=None,
        headers={
            "Origin": FOREIGN_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    actual = target.request("GET", target.read_path, headers={"Origin": FOREIGN_ORIGIN})
    for sent in (preflight, actual):
        origin = sent.headers.get("access-control-allow-origin", "")
        credentials = sent.headers.get("access-control-allow-credentials", "")
        if origin == FOREIGN_ORIGIN:
            return fail(
                "a foreign Origin is reflected in Access-Control-Allow-Origin", sent
            )
        if origin == "*" and credentials.lower() == "true":
            return fail("wildcard CORS together with Allow-Credentials: true", sent)
    return passed("foreign origins get no CORS grant", preflight, actual)


def _check(
    check_id: str,
    title: str,
    run: Callable[[Target], Outcome],
    remedy: str,
    *,
    hnzas: tuple[str, ...] = ZT,
    severity: Severity = Severity.HIGH,
) -> Check:
    return Check(check_id, title, 6, hnzas, severity, remedy, run)


CHECKS: tuple[Check, ...] = (
    _check(
        "zt.no-set-cookie",
        "No response sets a cookie",
        _no_set_cookie,
        "Strip Set-Cookie from every response at the gateway; the API must not "
        "keep sessions.",
    ),
    _check(
        "zt.cookie-only",
        "A request carrying only cookies is refused",
        _cookie_only,
        "Never accept cookies as credentials; refuse requests that carry them.",
        severity=Severity.CRITICAL,
    ),
    _check(
        "zt.forwarding-anonymous",
        "Forwarding headers claiming an internal source do not replace a token",
        _spoof_anonymous,
        "Take the client address from the socket or a configured trusted proxy "
        "only; never grant access for a network location.",
        severity=Severity.CRITICAL,
    ),
    _check(
        "zt.forwarding-links",
        "Client-set forwarding headers do not change links or routing",
        _spoof_links,
        "Drop client Forwarded / X-Forwarded-* headers and set them only at the "
        "gateway.",
        hnzas=(*ZT, "HNZAS_SHOULD_INJECT_IDENTITY_CONTEXT_ZT_ARCH"),
        severity=Severity.MEDIUM,
    ),
    _check(
        "zt.method-override",
        "Method-override headers are refused",
        _method_override,
        "Refuse X-HTTP-Method-Override and similar headers (400); authorise the "
        "method that is actually executed.",
        hnzas=(*ZT, "HNZAS_SHOULD_WHITELIST_HTTP_METHODS"),
    ),
    _check(
        "zt.unlisted-methods",
        "Methods the API does not offer (TRACE, PATCH) are refused",
        _unlisted_methods,
        "Allow-list the methods each route offers; answer 405 to the rest.",
        hnzas=("HNZAS_SHOULD_WHITELIST_HTTP_METHODS",),
        severity=Severity.MEDIUM,
    ),
    _check(
        "zt.cors",
        "CORS does not grant foreign origins, and never with credentials",
        _cors,
        "Answer CORS only for an allow-list of origins; never reflect the Origin "
        "header and never combine a wildcard with Allow-Credentials.",
    ),
)
