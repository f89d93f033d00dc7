"""Certificate-bound access tokens (RFC 8705 §3): ``cnf.x5t#S256``.

The client certificate comes from the TLS connection (the ASGI ``tls``
extension's ``client_cert_chain``), or from ``certificate_header`` when, and
only when, the socket peer is one of ``trusted_proxies``. The header may hold
an RFC 9440 ``Client-Cert`` byte sequence (``:base64-DER:``), a PEM
certificate URL-encoded as nginx and most load balancers send it, or
Envoy's ``X-Forwarded-Client-Cert`` with exactly one element carrying
``Cert="..."`` (more than one element, a chain of proxies, is not trusted).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kaitiaki.errors import InvalidToken
from kaitiaki.settings import MtlsSettings

__all__ = ["certificate_from", "certificate_thumbprint", "check_certificate_binding"]

_MAX_CERT_TEXT = 16384


def _refuse(detail: str) -> InvalidToken:
    return InvalidToken("The access token is not valid.", detail=detail)


def _xfcc_elements(text: str) -> list[dict[str, str]]:
    """Envoy's XFCC: elements split by ``,``, pairs by ``;``, values quoted."""
    elements: list[dict[str, str]] = [{}]
    key, value, quoted, in_value = "", "", False, False
    for char in text + ";":
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "=" and not in_value:
            in_value = True
        elif not quoted and char in ";,":
            if key.strip():
                elements[-1][key.strip().lower()] = value
            key, value, in_value = "", "", False
            if char == ",":
                elements.append({})
        elif in_value:
            value += char
        else:
            key += char
    return elements


def _from_xfcc(text: str) -> str | None:
    elements = _xfcc_elements(text)
    if len(elements) != 1 or "cert" not in elements[0]:
        return None
    return unquote(elements[0]["cert"])


def _der_from_text(text: str) -> bytes | None:
    text = text.strip()
    if len(text) > _MAX_CERT_TEXT:
        return None
    if 'cert="' in text.lower():
        found = _from_xfcc(text)
        if found is None:
            return None
        text = found
    try:
        if text.startswith(":") and text.endswith(":") and len(text) > 2:
            der = base64.b64decode(text[1:-1], validate=True)
            return x509.load_der_x509_certificate(der).public_bytes(Encoding.DER)
        pem = unquote(text) if "%" in text else text
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    return cert.public_bytes(Encoding.DER)


def _trusted(peer: str, settings: MtlsSettings) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(entry, strict=False)
        for entry in settings.trusted_proxies
    )


def certificate_from(
    tls: Mapping[str, Any] | None,
    headers: Mapping[str, list[str]],
    peer: str,
    settings: MtlsSettings,
) -> bytes | None:
    """The client certificate (DER) for this request, or None."""
    chain = (tls or {}).get("client_cert_chain") or ()
    for pem in list(chain)[:1]:
        return _der_from_text(str(pem))
    name = settings.certificate_header
    if name is None or not _trusted(peer, settings):
        return None
    values = headers.get(name, [])
    if len(values) != 1:
        return None
    return _der_from_text(values[0])


def certificate_thumbprint(der: bytes) -> str:
    digest = hashlib.sha256(der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_certificate_binding(expected: str, certificate: bytes | None) -> None:
    """The token's ``x5t#S256`` must be the thumbprint of the certificate."""
    if certificate is None:
        raise _refuse("mtls_certificate_missing")
    if not hmac.compare_digest(expected, certificate_thumbprint(certificate)):
        raise _refuse("mtls_certificate_mismatch")
