"""Opaque tokens through RFC 7662 introspection against a stand-in issuer."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.errors import ConfigError, DependencyUnavailable, InvalidToken
from kaitiaki.settings import AuthSettings
from kaitiaki.tokens.introspection import Introspector
from kaitiaki.tokens.secretref import resolve_secret
from tests.conftest import ThreadServer, free_port

pytestmark = pytest.mark.anyio

AUDIENCE = "https://gw.example/fhir"
NOW = int(time.time())
CLIENT_KEY = ECKey.generate_key("P-256", auto_kid=True)


@dataclass
class StandInAs:
    url: str
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def active(self, token: str, **claims: Any) -> None:
        self.answers[token] = {
            "active": True,
            "iss": self.url,
            "aud": AUDIENCE,
            "client_id": "app",
            "sub": "user-1",
            "scope": "system/Patient.rs",
            "exp": NOW + 300,
            "iat": NOW,
            **claims,
        }


def _client_authenticated(request: Request, form: dict[str, str], url: str) -> bool:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        return base64.b64decode(header[6:]).decode() == "gw:s3cret%2Fx"
    assertion = form.get("client_assertion")
    if assertion is None:
        return False
    claims = jwt.decode(assertion, CLIENT_KEY).claims
    return claims["iss"] == claims["sub"] == "gw" and claims["aud"] == url


def _as_app(state: StandInAs) -> Starlette:
    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {"issuer": state.url, "introspection_endpoint": f"{state.url}/introspect"}
        )

    async def introspect(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        state.calls.append(form.get("token", ""))
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        await asyncio.sleep(0.02)  # let concurrent calls overlap, if allowed
        state.in_flight -= 1
        if not _client_authenticated(request, form, state.url):
            return JSONResponse({"error": "invalid_client"}, 401)
        return JSONResponse(state.answers.get(form["token"], {"active": False}))

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", metadata),
            Route("/introspect", introspect, methods=["POST"]),
        ]
    )


@pytest.fixture
async def stand_in() -> AsyncIterator[StandInAs]:
    port = free_port()
    state = StandInAs(f"http://127.0.0.1:{port}")
    with ThreadServer(_as_app(state), port):
        yield state


def _settings(issuer: str, **introspection: Any) -> AuthSettings:
    options: dict[str, Any] = {
        "client_id": "gw",
        "auth_method": "client_secret_basic",
        "client_secret": "env:GW_SECRET",
        **introspection,
    }
    return AuthSettings(issuer=issuer, audience=AUDIENCE, introspection=options)


ENV = {"GW_SECRET": "s3cret/x"}


async def test_introspection_active_token_is_cached(stand_in: StandInAs) -> None:
    stand_in.active("opaque-1")
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(_settings(stand_in.url), session, ENV)
        principal = await introspector.principal("opaque-1", NOW)
        assert principal.client_id == "app"
        assert principal.token_format == "opaque"
        await introspector.principal("opaque-1", NOW + 10)
        assert stand_in.calls == ["opaque-1"]


async def test_introspection_calls_in_flight_are_bounded(
    stand_in: StandInAs,
) -> None:
    async with aiohttp.ClientSession() as session:
        settings = _settings(stand_in.url, max_concurrent_calls=2)
        introspector = Introspector(settings, session, ENV)
        outcomes = await asyncio.gather(
            *(introspector.principal(f"made-up-{n}", NOW) for n in range(8)),
            return_exceptions=True,
        )
    assert all(isinstance(outcome, InvalidToken) for outcome in outcomes)
    assert len(stand_in.calls) == 8
    assert stand_in.most_in_flight <= 2


async def test_introspection_concurrent_requests_share_one_call(
    stand_in: StandInAs,
) -> None:
    stand_in.active("opaque-5")
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(_settings(stand_in.url), session, ENV)
        found = await asyncio.gather(
            *(introspector.principal("opaque-5", NOW) for _ in range(20))
        )
        assert {principal.client_id for principal in found} == {"app"}
        assert stand_in.calls == ["opaque-5"]


async def test_introspection_revocation_is_honoured_after_cache(
    stand_in: StandInAs,
) -> None:
    stand_in.active("opaque-2")
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(_settings(stand_in.url), session, ENV)
        await introspector.principal("opaque-2", NOW)
        stand_in.answers["opaque-2"] = {"active": False}
        with pytest.raises(InvalidToken):
            await introspector.principal("opaque-2", NOW + 31)
        with pytest.raises(InvalidToken):  # the refusal is cached too
            await introspector.principal("opaque-2", NOW + 32)
        assert len(stand_in.calls) == 2


async def test_introspection_cache_never_outlives_exp(stand_in: StandInAs) -> None:
    stand_in.active("opaque-3", exp=NOW + 5)
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(_settings(stand_in.url), session, ENV)
        await introspector.principal("opaque-3", NOW)
        stand_in.answers["opaque-3"]["exp"] = NOW + 200
        await introspector.principal("opaque-3", NOW + 6)
        assert len(stand_in.calls) == 2


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"active": "true"}, "token_inactive"),
        ({"aud": "billing-api"}, "aud_mismatch"),
        ({"aud": None}, "aud_mismatch"),
        ({"iss": "https://attacker.example"}, "iss_mismatch"),
        ({"exp": None}, "exp_invalid"),
        ({"exp": NOW - 100}, "expired"),
        ({"token_type": "refresh_token"}, "token_type_not_access"),
        ({"client_id": None, "sub": None}, "client_missing"),
        ({"cnf": {"x5t": "sha1"}}, "cnf_unsupported"),
    ],
)
async def test_introspection_answers_that_are_refused(
    stand_in: StandInAs, claims: dict[str, Any], reason: str
) -> None:
    stand_in.active("opaque-x", **claims)
    if claims.get("aud", 1) is None:
        del stand_in.answers["opaque-x"]["aud"]
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(_settings(stand_in.url), session, ENV)
        with pytest.raises(InvalidToken) as refused:
            await introspector.principal("opaque-x", NOW)
        assert refused.value.detail == reason


async def test_introspection_unreachable_fails_closed() -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(_settings(issuer), session, ENV)
        with pytest.raises(DependencyUnavailable):
            await introspector.principal("opaque-1", NOW)


async def test_introspection_with_wrong_client_secret_fails_closed(
    stand_in: StandInAs,
) -> None:
    stand_in.active("opaque-1")
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(
            _settings(stand_in.url), session, {"GW_SECRET": "wrong"}
        )
        with pytest.raises(DependencyUnavailable):
            await introspector.principal("opaque-1", NOW)


async def test_introspection_with_private_key_jwt(
    stand_in: StandInAs, tmp_path: Path
) -> None:
    key_path = tmp_path / "gw.jwk"
    key_path.write_text(json.dumps(CLIENT_KEY.as_dict(private=True)))
    key_path.chmod(0o600)
    stand_in.active("opaque-4")
    settings = _settings(
        stand_in.url,
        auth_method="private_key_jwt",
        client_secret=None,
        private_key_path=str(key_path),
    )
    async with aiohttp.ClientSession() as session:
        introspector = Introspector(settings, session, {})
        assert (await introspector.principal("opaque-4", NOW)).subject == "user-1"


def test_secret_reference_resolution(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    assert resolve_secret("env:A", {"A": "x"}, setting="s") == "x"
    assert resolve_secret(f"file:{secret_file}", {}, setting="s") == "from-file"
    for reference in ("env:MISSING", f"file:{tmp_path / 'none'}", "plain"):
        with pytest.raises(ConfigError):
            resolve_secret(reference, {}, setting="s")


def test_introspection_settings_need_a_credential() -> None:
    with pytest.raises(ValueError, match="client_secret"):
        _settings("https://as.example", client_secret=None)
    with pytest.raises(ValueError, match="private_key_path"):
        _settings("https://as.example", auth_method="private_key_jwt")
    with pytest.raises(ValueError):
        _settings("https://as.example", client_secret="inline-secret")
