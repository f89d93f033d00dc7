"""``vault:`` references through hvac, against a stand-in Vault on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.errors import ConfigError
from kaitiaki.iam import Secret, SecretStore
from kaitiaki.iam.vault import VaultReader
from tests.conftest import ThreadServer

TOKEN = "hvs.test-token-1"
SECRETS = {
    "kv/data/kaitiaki": {"data": {"data": {"upstream": "kv2-value"}, "metadata": {}}},
    "secret/kaitiaki": {"data": {"upstream": "kv1-value"}},
}


def vault_app(seen: list[str]) -> Starlette:
    async def read(request: Request) -> Response:
        seen.append(request.headers.get("x-vault-token", ""))
        if request.headers.get("x-vault-token") != TOKEN:
            return JSONResponse({"errors": ["permission denied"]}, 403)
        body = SECRETS.get(request.path_params["path"])
        if body is None:
            return JSONResponse({"errors": []}, 404)
        return JSONResponse(body)

    return Starlette(routes=[Route("/v1/{path:path}", read)])


@pytest.fixture
def vault() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    with ThreadServer(vault_app(seen)) as server:
        yield server.url, seen


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("vault:kv/data/kaitiaki#upstream", "kv2-value"),
        ("vault:secret/kaitiaki#upstream", "kv1-value"),
    ],
)
def test_vault_reference_resolves(
    vault: tuple[str, list[str]], reference: str, expected: str
) -> None:
    url, seen = vault
    store = SecretStore({}, vault=VaultReader(url, Secret(TOKEN, source="env:T")))

    assert store.resolve(reference, setting="gateway.key").reveal() == expected
    assert seen == [TOKEN]


@pytest.mark.parametrize(
    ("reference", "token"),
    [
        ("vault:kv/data/kaitiaki#missing", TOKEN),
        ("vault:kv/data/absent#upstream", TOKEN),
        ("vault:kv/data/kaitiaki#upstream", "wrong"),
    ],
)
def test_vault_failure_is_a_config_error(
    vault: tuple[str, list[str]], reference: str, token: str
) -> None:
    url, _ = vault
    store = SecretStore({}, vault=VaultReader(url, Secret(token, source="env:T")))

    with pytest.raises(ConfigError) as caught:
        store.resolve(reference, setting="gateway.key")
    assert token not in str(caught.value)
