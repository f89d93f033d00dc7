"""fetch_token against the issuer served by a real uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from issuer_support import free_port, make_settings
from joserfc import jwt
from joserfc.jwk import KeySet

from kaitiaki.errors import ConfigError
from kaitiaki.issuer import (
    TokenRequestFailed,
    create_app,
    fetch_token,
    fetch_token_sync,
)
from kaitiaki.issuer.state import load_state
from kaitiaki.settings import DevIssuerSettings


@pytest.fixture
def served(tmp_path: Path, loopback_server: Any) -> Iterator[DevIssuerSettings]:
    settings = make_settings(tmp_path, port=free_port())
    with loopback_server(create_app(settings), port=settings.port):
        yield settings


def _key_path(settings: DevIssuerSettings, client_id: str) -> Path:
    (demo,) = [c for c in settings.clients if c.client_id == client_id]
    return Path(demo.key_path)


def test_fetch_token_sync_returns_usable_token(served: DevIssuerSettings) -> None:
    response = fetch_token_sync(
        served.url, "demo-system", _key_path(served, "demo-system")
    )

    assert response.token_type == "Bearer"
    assert response.scope == "system/*.rs"
    assert 0 < response.expires_in <= 600
    public = KeySet.import_key_set(load_state(served).public_jwks)
    claims = jwt.decode(response.access_token, public, algorithms=["ES256"]).claims
    assert claims["iss"] == served.url
    assert claims["client_id"] == "demo-system"
    assert response.access_token not in repr(response)


@pytest.mark.anyio
async def test_fetch_token_requested_scope(served: DevIssuerSettings) -> None:
    response = await fetch_token(
        served.url + "/",
        "demo-writer",
        _key_path(served, "demo-writer"),
        scope="system/*.cruds",
    )

    assert response.scope == "system/*.cruds"


def test_fetch_token_unregistered_scope_fails(served: DevIssuerSettings) -> None:
    with pytest.raises(TokenRequestFailed) as caught:
        fetch_token_sync(
            served.url,
            "demo-system",
            _key_path(served, "demo-system"),
            scope="system/*.cruds",
        )

    assert caught.value.error == "invalid_scope"
    assert caught.value.status == 400
    assert caught.value.code == "token_request_failed"


def test_fetch_token_wrong_client_key_fails(served: DevIssuerSettings) -> None:
    with pytest.raises(TokenRequestFailed) as caught:
        fetch_token_sync(served.url, "demo-system", _key_path(served, "demo-writer"))

    assert caught.value.error == "invalid_client"


def test_fetch_token_group_readable_key_refused(served: DevIssuerSettings) -> None:
    key_path = _key_path(served, "demo-system")
    key_path.chmod(0o640)

    with pytest.raises(ConfigError, match=str(key_path)):
        fetch_token_sync(served.url, "demo-system", key_path)


def test_fetch_token_nothing_listening_fails(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    create_app(settings)

    with pytest.raises(TokenRequestFailed) as caught:
        fetch_token_sync(
            f"http://127.0.0.1:{free_port()}",
            "demo-system",
            _key_path(settings, "demo-system"),
            timeout=5,
        )

    assert caught.value.error == "unreachable"


def test_fetch_token_with_dpop_key_is_bound(served: DevIssuerSettings) -> None:
    from joserfc.jwk import ECKey

    dpop_key = ECKey.generate_key("P-256", auto_kid=True)
    response = fetch_token_sync(
        served.url,
        "demo-system",
        _key_path(served, "demo-system"),
        dpop_key=dpop_key,
    )
    assert response.token_type == "DPoP"
    public = KeySet.import_key_set(load_state(served).public_jwks)
    claims = jwt.decode(response.access_token, public, algorithms=["ES256"]).claims
    assert claims["cnf"] == {"jkt": dpop_key.thumbprint()}
