"""Listener TLS (1.3 by default, 1.2 by name, mTLS) and HSTS; the gateway's
client certificate towards an upstream that requires one."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kaitiaki.gateway.app import Gateway
from kaitiaki.gateway.tls import harden, listener_config
from kaitiaki.iam.listeners import server_config
from kaitiaki.settings import GatewaySettings, Settings, parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import Recorder, StandIn, gateway_toml, upstream_app
from tests.gateway.tls_support import Pki, make_pki, serving
from tests.gateway.zero_trust_support import adjusted

REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@contextmanager
def tls_server(
    app: Any, gateway: GatewaySettings, *, kaitiaki: bool = False
) -> Iterator[str]:
    """``app`` on a TLS listener; with ``kaitiaki``, exactly as ``kaitiaki
    serve`` builds it (ListenerProtocol), else with uvicorn's defaults."""
    port = free_port()
    if kaitiaki:
        config = server_config(app, "127.0.0.1", port, **listener_config(gateway))
    else:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            access_log=False,
            log_level="warning",
            **listener_config(gateway),
        )
    config.load()
    harden(config.ssl, gateway)
    with serving(config, f"https://127.0.0.1:{port}") as url:
        yield url


def client_context(
    pki: Pki, *, maximum: ssl.TLSVersion | None = None, cert: bool = False
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if maximum is not None:
        context.maximum_version = maximum
    if cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def settings_for(
    pki: Pki,
    standin: StandIn,
    tmp: Path,
    upstream: str = "http://127.0.0.1:9",  # by default never reached
    **gateway: Any,
) -> Settings:
    """A gateway on a TLS listener."""
    base = parse_settings(gateway_toml(standin.url, upstream, tmp), source="t")
    listener = {"tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key)}
    return adjusted(base, gateway={**listener, **gateway})


def test_tls13_by_default_and_hsts_on_tls_only(
    pki: Pki, standin: StandIn, tmp_path: Path
) -> None:
    settings = settings_for(
        pki,
        standin,
        tmp_path,
    )
    with tls_server(Gateway(settings), settings.gateway) as url:
        with httpx.Client(verify=client_context(pki)) as client:
            response = client.get(url + "/fhir/metadata")
        assert response.status_code in (200, 502)
        assert response.headers["strict-transport-security"].startswith("max-age=")
        old = client_context(pki, maximum=ssl.TLSVersion.TLSv1_2)
        with httpx.Client(verify=old) as client, pytest.raises(httpx.ConnectError):
            client.get(url + "/fhir/metadata")


def test_tls12_only_by_named_setting(
    pki: Pki, standin: StandIn, tmp_path: Path
) -> None:
    settings = settings_for(
        pki,
        standin,
        tmp_path,
        allow_tls12=True,
    )
    with tls_server(Gateway(settings), settings.gateway) as url:
        old = client_context(pki, maximum=ssl.TLSVersion.TLSv1_2)
        with httpx.Client(verify=old) as client:
            assert client.get(url + "/fhir/metadata").status_code in (200, 502)


def test_mtls_listener_requires_a_client_certificate(
    pki: Pki, standin: StandIn, tmp_path: Path
) -> None:
    settings = settings_for(
        pki,
        standin,
        tmp_path,
        tls_client_ca=str(pki.ca),
    )
    with tls_server(Gateway(settings), settings.gateway) as url:
        with httpx.Client(verify=client_context(pki)) as client:
            with pytest.raises(
                (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
            ):
                client.get(url + "/fhir/metadata")
        with httpx.Client(verify=client_context(pki, cert=True)) as client:
            assert client.get(url + "/fhir/metadata").status_code in (200, 502)


def test_gateway_presents_its_client_certificate_upstream(
    pki: Pki, standin: StandIn, tmp_path: Path
) -> None:
    recorder = Recorder()
    upstream_tls = GatewaySettings(
        upstream="-",
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca),
    )
    with tls_server(upstream_app(recorder), upstream_tls) as upstream:
        base = parse_settings(gateway_toml(standin.url, upstream, tmp_path), source="t")
        settings = adjusted(
            base,
            upstream_auth={
                "client_cert": str(pki.client_cert),
                "client_key": str(pki.client_key),
                "ca_file": str(pki.ca),
            },
        )
        without_cert = adjusted(base, upstream_auth={"ca_file": str(pki.ca)})
        for chosen, expected in ((settings, 200), (without_cert, 502)):
            with (
                ThreadServer(Gateway(chosen)) as gw,
                httpx.Client(base_url=gw.url) as client,
            ):
                assert client.get("/fhir/metadata").status_code == expected
    assert len(recorder.requests) == 1


def _client_certificate(pki: Pki) -> tuple[str, str]:
    """The test client's certificate as PEM, and its RFC 8705 thumbprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from kaitiaki.tokens.mtls import certificate_thumbprint

    pem = pki.client_cert.read_text()
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    return pem, certificate_thumbprint(der)


def _bound(standin: StandIn, thumbprint: str) -> dict[str, str]:
    token = standin.token({"cnf": {"x5t#S256": thumbprint}})
    return {"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}


def test_certificate_bound_token_checked_against_the_tls_connection(
    pki: Pki, standin: StandIn, tmp_path: Path
) -> None:
    """RFC 8705 without a proxy: the certificate the listener verified is the
    one the token's ``cnf.x5t#S256`` must name."""
    _, thumbprint = _client_certificate(pki)
    recorder = Recorder()
    with ThreadServer(upstream_app(recorder)) as upstream:
        settings = settings_for(
            pki, standin, tmp_path, upstream.url, tls_client_ca=str(pki.ca)
        )
        with (
            tls_server(Gateway(settings), settings.gateway, kaitiaki=True) as url,
            httpx.Client(verify=client_context(pki, cert=True)) as client,
        ):
            served = client.get(
                url + "/fhir/Patient", headers=_bound(standin, thumbprint)
            )
            refused = client.get(url + "/fhir/Patient", headers=_bound(standin, "x"))
    assert served.status_code == 200, served.text
    assert refused.status_code == 401
    assert len(recorder.requests) == 1


def test_without_a_verified_certificate_a_bound_token_is_refused(
    pki: Pki, standin: StandIn, tmp_path: Path
) -> None:
    """A TLS listener that asks for no client certificate has none to offer:
    the bound token is refused, and a certificate header cannot stand in."""
    pem, thumbprint = _client_certificate(pki)
    recorder = Recorder()
    with ThreadServer(upstream_app(recorder)) as upstream:
        settings = settings_for(pki, standin, tmp_path, upstream.url)
        headers = {
            **_bound(standin, thumbprint),
            "X-Client-Cert": pem.replace("\n", ""),
        }
        with (
            tls_server(Gateway(settings), settings.gateway, kaitiaki=True) as url,
            httpx.Client(verify=client_context(pki, cert=True)) as client,
        ):
            refused = client.get(url + "/fhir/Patient", headers=headers)
    assert refused.status_code == 401
    assert recorder.requests == []
