"""Transport checks against a real TLS listener on loopback, trusted through
the profile's private CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.conftest import free_port

from kaitiaki.probe import Profile, Verdict, run_probe


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key, key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("probe test CA"))
        .issuer_name(_name("probe test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


async def _bundle(request: Request) -> JSONResponse:
    return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": []})


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", _bundle)])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}/fhir", ca
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _profile(base: str, ca: Path | None) -> Profile:
    return Profile.model_validate(
        {
            "auth": {"issuer": base},
            "clients": {
                "reader": {
                    "client_id": "r",
                    "auth_method": "client_secret_post",
                    "secret": "env:HOME",
                }
            },
            "tls": {"ca_file": str(ca) if ca else None},
        }
    )


def test_probe_tls_checks_against_a_tls_1_2_listener(
    tls_server: tuple[str, Path],
) -> None:
    base, ca = tls_server
    report = run_probe(base, _profile(base, ca), only=("tls.",))
    verdicts = {r.check.id: r for r in report.results}
    # uvicorn's default context still accepts TLS 1.2: below the standard's floor.
    assert verdicts["tls.version-floor"].verdict is Verdict.FAIL
    assert "TLSv1.2" in verdicts["tls.version-floor"].outcome.summary
    assert verdicts["tls.certificate"].verdict is Verdict.PASS
    assert verdicts["tls.hsts"].verdict is Verdict.FAIL


def test_probe_untrusted_certificate_fails(tls_server: tuple[str, Path]) -> None:
    base, _ = tls_server
    report = run_probe(base, _profile(base, None), only=("tls.certificate",))
    assert report.results[0].verdict is Verdict.FAIL
    assert "does not verify" in report.results[0].outcome.summary
