"""Where the client certificate comes from, and the x5t#S256 comparison."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc.jwk import ECKey

from kaitiaki.errors import InvalidToken
from kaitiaki.settings import MtlsSettings
from kaitiaki.tokens.mtls import certificate_from, check_certificate_binding
from tests.tokens.forge import self_signed_der, thumbprint_der

DER = self_signed_der(ECKey.generate_key("P-256"))
PEM = x509.load_der_x509_certificate(DER).public_bytes(Encoding.PEM).decode()
XFCC = f'By=spiffe://gw;Hash=00ff;Cert="{quote(PEM)}";Subject="CN=client,O=x"'
TRUSTING = MtlsSettings(
    certificate_header="X-Client-Cert", trusted_proxies=("10.0.0.0/8",)
)


@pytest.mark.parametrize(
    ("tls", "headers", "peer", "expected"),
    [
        ({"client_cert_chain": [PEM]}, {}, "203.0.113.9", DER),
        (
            None,
            {"x-client-cert": [":" + base64.b64encode(DER).decode() + ":"]},
            "10.1.2.3",
            DER,
        ),
        (None, {"x-client-cert": [quote(PEM)]}, "10.1.2.3", DER),
        (None, {"x-client-cert": [PEM.replace("\n", " ")]}, "10.1.2.3", DER),
        (None, {"x-client-cert": [quote(PEM)]}, "203.0.113.9", None),
        (None, {"x-client-cert": [quote(PEM), quote(PEM)]}, "10.1.2.3", None),
        (None, {"x-client-cert": [":bm90IGEgY2VydA==:"]}, "10.1.2.3", None),
        (None, {"x-client-cert": [quote(PEM)]}, "not-an-address", None),
        ({"client_cert_chain": []}, {}, "10.1.2.3", None),
        (None, {"x-client-cert": [XFCC]}, "10.1.2.3", DER),
        (None, {"x-client-cert": [XFCC + "," + XFCC]}, "10.1.2.3", None),
        (None, {"x-client-cert": ["Hash=00ff;Subject=x"]}, "10.1.2.3", None),
        (None, {"x-client-cert": ['Cert="garbage"']}, "10.1.2.3", None),
    ],
)
def test_certificate_sources(
    tls: dict[str, list[str]] | None,
    headers: dict[str, list[str]],
    peer: str,
    expected: bytes | None,
) -> None:
    assert certificate_from(tls, headers, peer, TRUSTING) == expected


def test_certificate_header_needs_a_configured_name() -> None:
    headers = {"x-client-cert": [quote(PEM)]}
    untrusting = MtlsSettings(trusted_proxies=("10.0.0.0/8",))
    assert certificate_from(None, headers, "10.1.2.3", untrusting) is None


def test_certificate_binding_compares_thumbprints() -> None:
    check_certificate_binding(thumbprint_der(DER), DER)
    other = self_signed_der(ECKey.generate_key("P-256"))
    for certificate in (other, None):
        with pytest.raises(InvalidToken):
            check_certificate_binding(thumbprint_der(DER), certificate)


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="not an address"):
        MtlsSettings(trusted_proxies=("proxy.internal",))
