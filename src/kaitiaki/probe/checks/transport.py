"""Requirement 7, transport and response hygiene: TLS floor, certificate,
HSTS, ``Cache-Control: no-store`` on patient data, no version banners.

On a plain-HTTP loopback target (the local demo) the TLS checks are "not
applicable" and say so; plain HTTP on any other host fails them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kaitiaki.probe.checks.common import fail, not_applicable, passed
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.profile import tls_context
from kaitiaki.probe.target import Target

__all__ = ["CHECKS", "is_loopback"]

TLS = ("HNZAS_MUST_USE_TLS", "HNZAS_MUST_USE_TLS_1_3_OR_HIGHER")
ONE_YEAR = 31_536_000
_VERSION = re.compile(r"\d+\.\d+|/\s*\d")
_BANNERS = ("x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-runtime")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plain(target: Target) -> Outcome | None:
    """The verdict for a target without TLS, or None when it uses TLS."""
    if target.is_https:
        return None
    host = urlsplit(target.base_url).hostname or ""
    if is_loopback(host):
        return not_applicable(
            "plain HTTP on loopback (local test only): no TLS to test"
        )
    return fail("the API is served over plain HTTP")


def _handshake(
    target: Target, context: ssl.SSLContext
) -> tuple[str | None, dict[str, Any]]:
    parts = urlsplit(target.base_url)
    host, port = parts.hostname or "", parts.port or 443
    target.http.check_allowed("GET", target.base_url)
    timeout = target.profile.safety.timeout_seconds
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.version(), tls.getpeercert() or {}


def _tls_floor(target: Target) -> Outcome:
    plain = _plain(target)
    if plain is not None:
        return plain
    # TLS 1.2 at most: a server that accepts it accepts less than the floor
    # (1.0 and 1.1 are refused by the probe's own TLS library already).
    old = tls_context(target.profile)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        version, _ = _handshake(target, old)
    except (ssl.SSLError, OSError):
        version = None
    if version is not None:
        return fail(f"the server accepts {version} (the standard asks for TLS 1.3)")
    modern, _ = _handshake(target, tls_context(target.profile))
    if modern != "TLSv1.3":
        return fail(f"the server negotiated {modern}, not TLS 1.3")
    return passed("TLS 1.2 and older are refused; TLS 1.3 is negotiated")


def _certificate(target: Target) -> Outcome:
    plain = _plain(target)
    if plain is not None:
        return plain
    try:
        _, cert = _handshake(target, tls_context(target.profile))
    except ssl.SSLCertVerificationError as exc:
        return fail(f"the certificate does not verify: {exc.verify_message}")
    expires = ssl.cert_time_to_seconds(str(cert.get("notAfter")))
    days = int((expires - time.time()) // 86400)
    if days < 14:
        return fail(f"the certificate expires in {days} days")
    return passed(f"the certificate verifies and is valid for {days} more days")


def _hsts(target: Target) -> Outcome:
    plain = _plain(target)
    if plain is not None:
        return plain
    # Every answer over TLS carries HSTS, a refusal as much as data.
    sent = target.request("GET", target.read_path, role=None)
    value = sent.headers.get("strict-transport-security", "")
    match = re.search(r"max-age=(\d+)", value)
    if not match or int(match.group(1)) < ONE_YEAR:
        return fail("no Strict-Transport-Security with max-age of a year or more", sent)
    return passed("Strict-Transport-Security is set", sent)


def _no_store(target: Target) -> Outcome:
    sent = target.request("GET", target.read_path)
    if not 200 <= sent.status < 300:
        return fail(f"patient data could not be read (HTTP {sent.status})", sent)
    cache = sent.headers.get("cache-control", "").lower()
    if "no-store" not in cache:
        return fail("patient data is served without Cache-Control: no-store", sent)
    return passed("patient data is served with Cache-Control: no-store", sent)


def _banners(target: Target) -> Outcome:
    target.request("GET", target.read_path, role=None)
    for sent in target.http.seen:
        if not sent.exchange.url.startswith(target.base_url):
            continue
        server = sent.headers.get("server", "")
        if server and _VERSION.search(server):
            return fail("the Server header names a version", sent)
        for name in _BANNERS:
            if name in sent.headers:
                return fail(f"the response carries {name}", sent)
    return passed("no response names its server software or version")


def _check(
    check_id: str,
    title: str,
    run: Callable[[Target], Outcome],
    hnzas: tuple[str, ...],
    remedy: str,
    *,
    severity: Severity = Severity.HIGH,
) -> Check:
    return Check(check_id, title, 7, hnzas, severity, remedy, run)


CHECKS: tuple[Check, ...] = (
    _check(
        "tls.version-floor",
        "TLS 1.3 is negotiated and older versions are refused",
        _tls_floor,
        (*TLS, "HNZAS_SHOULD_DISABLE_TLS_VERSIONS_BELOW_1_3"),
        "Terminate TLS with TLS 1.3 only (ssl_protocols TLSv1.3 or equivalent).",
    ),
    _check(
        "tls.certificate",
        "The server certificate verifies and is not about to expire",
        _certificate,
        ("HNZAS_MUST_USE_TLS", "HNZAS_MUST_VALIDATE_TLS_CERTIFICATE_CHAINS"),
        "Serve a certificate from a trusted CA with the full chain; renew early.",
    ),
    _check(
        "tls.hsts",
        "Strict-Transport-Security is sent",
        _hsts,
        ("HNZAS_MUST_USE_TLS",),
        "Send Strict-Transport-Security: max-age=31536000; includeSubDomains.",
        severity=Severity.MEDIUM,
    ),
    _check(
        "http.no-store",
        "Patient data is sent with Cache-Control: no-store",
        _no_store,
        ("HNZAS_MUST_USE_CACHE_CONTROL",),
        "Send Cache-Control: no-store, private on every response with patient data.",
    ),
    _check(
        "http.no-version-banner",
        "No response names its server software or version",
        _banners,
        ("HNZAS_SHOULD_NOT_REVEAL_SYSTEM_INFO",),
        "Remove Server version strings and X-Powered-By style headers.",
        severity=Severity.LOW,
    ),
)
