"""The admin listener over TLS with client certificates required (mTLS)."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kaitiaki.gateway.app import Gateway
from kaitiaki.iam.admin import create_admin_app
from kaitiaki.iam.listeners import admin_server_config
from kaitiaki.iam.policy import load_policies
from kaitiaki.settings import AdminSettings, parse_settings
from tests.conftest import free_port
from tests.gateway.tls_support import serving

NOW = dt.datetime.now(dt.UTC)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    issuer_name, signer = (subject, key) if issuer is None else issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
    )
    if subject == "127.0.0.1":
        import ipaddress

        san = x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(subject))]
        )
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("kaitiaki-test-ca", ca_key, None)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_cert, _ = _write(tmp_path, "ca", ca, ca_key)
    server_cert, server_key_path = _write(
        tmp_path,
        "server",
        _certificate("127.0.0.1", server_key, ("kaitiaki-test-ca", ca_key)),
        server_key,
    )
    client_cert, client_key_path = _write(
        tmp_path,
        "client",
        _certificate("ops", client_key, ("kaitiaki-test-ca", ca_key)),
        client_key,
    )
    return {
        "ca": ca_cert,
        "server_cert": server_cert,
        "server_key": server_key_path,
        "client_cert": client_cert,
        "client_key": client_key_path,
    }


@pytest.fixture
def admin_url(pki: dict[str, Path], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    admin = AdminSettings(
        enabled=True,
        port=port,
        tls_cert=str(pki["server_cert"]),
        tls_key=str(pki["server_key"]),
        client_ca=str(pki["ca"]),
    )
    settings = parse_settings(
        '[gateway]\nupstream = "http://127.0.0.1:9"\n'
        '[auth]\nissuer = "https://i.kaitiaki.nz"\naudience = "a"\n',
        source="t",
    )
    app = create_admin_app(Gateway(settings), load_policies(None), lambda: settings)
    config = admin_server_config(app, admin)
    config.log_level = "warning"
    with serving(config, f"https://127.0.0.1:{port}") as url:
        yield url


def test_admin_mtls_refuses_client_without_certificate(
    admin_url: str, pki: dict[str, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(pki["ca"]))

    with pytest.raises(httpx.TransportError):
        with httpx.Client(verify=context, timeout=5) as client:
            client.get(f"{admin_url}/admin/config")


def test_admin_mtls_accepts_client_certificate(
    admin_url: str, pki: dict[str, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))

    with httpx.Client(verify=context, timeout=5) as client:
        reply = client.get(f"{admin_url}/admin/config")

    assert reply.status_code == 401
    assert reply.json()["errors"][0]["code"] == "unauthenticated"
