"""The admin plane: its own audience, Cedar decisions, audit, kill switch."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kaitiaki.errors import ConfigError
from kaitiaki.gateway.app import Gateway
from kaitiaki.iam.admin import create_admin_app
from kaitiaki.iam.keyring import KeyRing
from kaitiaki.iam.policy import load_policies
from kaitiaki.settings import Settings, parse_settings
from tests.conftest import ThreadServer, free_port
from tests.gateway.conftest import (
    Recorder,
    StandIn,
    gateway_toml,
    issuer_app,
    upstream_app,
)
from tests.gateway.test_authorise import SYSTEM_CONTEXT

ADMIN = "kaitiaki-admin"


@dataclass
class AdminUnderTest:
    admin: httpx.Client
    gateway: httpx.Client
    issuer: StandIn
    recorder: Recorder
    audit_path: Path
    key_dir: Path
    app: Gateway
    next_settings: list[Callable[[], Settings]]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def admin_token(self, scope: str, client: str = "ops") -> str:
        return self.issuer.token({"aud": ADMIN, "scope": scope, "client_id": client})

    def call(self, method: str, path: str, token: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return self.admin.request(method, path, headers=headers)


def _settings(issuer: str, upstream: str, tmp: Path) -> Settings:
    extra = f"""
[keys]
dir = "{tmp / "keys"}"
overlap_seconds = 600
[admin]
enabled = true
port = 0
suspensions_file = "{tmp / "suspended.json"}"
"""
    return parse_settings(gateway_toml(issuer, upstream, tmp, extra), source="test")


class SharedLoopServers:
    """Gateway and admin app on one event loop in a thread, as in production."""

    def __init__(self, *apps: Any) -> None:
        self.ports = [free_port() for _ in apps]
        self.servers = [
            uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )
            for app, port in zip(apps, self.ports, strict=True)
        ]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def both() -> None:
            await asyncio.gather(*(server._serve() for server in self.servers))

        asyncio.run(both())

    def __enter__(self) -> list[str]:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not all(server.started for server in self.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("servers did not start")
            time.sleep(0.02)
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[AdminUnderTest]:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", auto_kid=True)
    port = free_port()
    recorder = Recorder()
    with (
        ThreadServer(issuer_app(key, [], port), port) as issuer,
        ThreadServer(upstream_app(recorder)) as upstream,
    ):
        settings = _settings(issuer.url, upstream.url, tmp_path)
        gateway = Gateway(settings)
        next_settings: list[Callable[[], Settings]] = [lambda: settings]

        def reload() -> Settings:
            return next_settings[0]()

        app = create_admin_app(gateway, load_policies(None), reload)
        with (
            SharedLoopServers(gateway, app) as (gw_url, admin_url),
            httpx.Client(base_url=admin_url, timeout=10) as admin_client,
            httpx.Client(base_url=gw_url, timeout=10) as gw_client,
        ):
            yield AdminUnderTest(
                admin_client,
                gw_client,
                StandIn(key, issuer.url, []),
                recorder,
                tmp_path / "audit.jsonl",
                tmp_path / "keys",
                gateway,
                next_settings,
            )


def test_admin_ordinary_client_token_forbidden(plane: AdminUnderTest) -> None:
    ordinary = plane.issuer.token()

    reply = plane.call("POST", "/admin/keys/upstream/rotate", ordinary)

    assert reply.status_code == 403
    assert reply.json()["errors"][0]["code"] == "forbidden"
    assert not (plane.key_dir / "upstream").exists()
    event = plane.events()[-1]
    assert event["refusal_code"] == "not_admin" and event["client_id"] is None
    assert event["interaction"] == "admin.rotate"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/admin/keys/upstream/rotate", "admin:config.read"),
        ("GET", "/admin/config", "admin:keys.rotate"),
        ("GET", "/admin/audit", "admin:config.read admin:keys.rotate"),
        ("POST", "/admin/clients/svc/suspend", "admin:audit.read"),
        ("POST", "/admin/clients/ops/suspend", "admin:clients.suspend"),
    ],
)
def test_admin_policy_denies_without_its_scope(
    plane: AdminUnderTest, method: str, path: str, scope: str
) -> None:
    reply = plane.call(method, path, plane.admin_token(scope))

    assert reply.status_code == 403
    event = plane.events()[-1]
    assert (event["refusal_code"], event["refusal_step"]) == (
        "policy_deny",
        "authorise",
    )
    assert event["client_id"] == "ops"


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("not-a-token", 401), ("a.b.c", 401)]
)
def test_admin_without_valid_token_unauthenticated(
    plane: AdminUnderTest, token: str | None, status: int
) -> None:
    reply = plane.call("GET", "/admin/config", token)

    assert reply.status_code == status
    assert "errors" in reply.json()


@pytest.mark.parametrize("token", ["not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_admin_invalid_token_challenge_names_the_error(
    plane: AdminUnderTest, token: str
) -> None:
    # RFC 6750 section 3.1 and the conventions of ../shared/cases/attacks.md:
    # a token that was sent and is not valid is `error="invalid_token"`, on
    # the admin plane as on the gateway.
    reply = plane.call("GET", "/admin/config", token)

    assert reply.status_code == 401
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert token not in challenge


def test_admin_without_token_challenge_has_no_error(plane: AdminUnderTest) -> None:
    # No credentials at all: a bare challenge (RFC 6750 section 3.1).
    reply = plane.call("GET", "/admin/config", None)

    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in reply.headers["www-authenticate"]


def test_admin_rotate_permitted_and_audited(plane: AdminUnderTest) -> None:
    ring = KeyRing.in_store("upstream", plane.key_dir)
    old = ring.ensure().kid

    reply = plane.call(
        "POST", "/admin/keys/upstream/rotate", plane.admin_token("admin:keys.rotate")
    )

    assert reply.status_code == 200
    body = reply.json()
    assert body["retired_kid"] == old and ring.current().kid == body["new_kid"]
    assert ring.find(str(old), body["verify_until"] - 1) is not None
    permit, served = plane.events()[-2:]
    assert (
        permit["interaction"] == "admin.rotate.permit"
        and permit["outcome"] == "permitted"
    )
    assert served["status"] == 200 and served["resource_type"] == "Key:upstream"
    assert served["client_id"] == "ops"


def test_admin_rotates_the_checkpoint_key_the_audit_really_uses(
    plane: AdminUnderTest,
) -> None:
    from kaitiaki.audit.keys import load_audit_keys, load_verification_keys

    audit = plane.app.settings.audit
    old = load_audit_keys(audit).signer.key_id
    token = plane.admin_token("admin:keys.rotate")

    reply = plane.call("POST", "/admin/keys/audit-checkpoint/rotate", token)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["retired_kid"] == old and body["verify_until"] == 0
    assert load_audit_keys(audit).signer.key_id == body["new_kid"] != old
    assert {old, body["new_kid"]} <= set(load_verification_keys(audit, []))


def test_admin_refuses_to_rotate_the_identifier_key(plane: AdminUnderTest) -> None:
    from kaitiaki.audit.keys import load_pseudonymiser

    audit = plane.app.settings.audit
    before = load_pseudonymiser(audit).patient("ZZZ0016")
    token = plane.admin_token("admin:keys.rotate")

    reply = plane.call("POST", "/admin/keys/identifier-hmac/rotate", token)

    assert reply.status_code == 400
    assert reply.json()["errors"][0]["code"] == "bad_request"
    assert load_pseudonymiser(audit).patient("ZZZ0016") == before
    refused = plane.events()[-1]
    assert (refused["outcome"], refused["refusal_code"]) == (
        "refused",
        "key_not_rotated",
    )


def test_admin_kill_switch_refuses_client_until_resumed(plane: AdminUnderTest) -> None:
    ordinary = plane.issuer.token()
    headers = {"authorization": f"Bearer {ordinary}", "accept": "application/fhir+json"}
    assert plane.gateway.get("/fhir/Patient", headers=headers).status_code == 200
    seen = len(plane.recorder.requests)
    scope = "admin:clients.suspend"

    assert (
        plane.call(
            "POST", "/admin/clients/svc/suspend", plane.admin_token(scope)
        ).status_code
        == 200
    )
    refused = plane.gateway.get("/fhir/Patient", headers=headers)
    assert refused.status_code == 403
    assert len(plane.recorder.requests) == seen
    assert plane.events()[-1]["refusal_code"] == "client_suspended"

    assert (
        plane.call(
            "POST", "/admin/clients/svc/resume", plane.admin_token(scope)
        ).status_code
        == 200
    )
    assert plane.gateway.get("/fhir/Patient", headers=headers).status_code == 200


def test_admin_config_view_masks_secrets(plane: AdminUnderTest) -> None:
    reply = plane.call("GET", "/admin/config", plane.admin_token("admin:config.read"))

    assert reply.status_code == 200
    settings = reply.json()["settings"]
    assert settings["admin"]["audience"] == ADMIN
    assert settings["auth"]["audience"] == "https://gw.example/fhir"


def test_admin_audit_query_reads_the_sink(plane: AdminUnderTest) -> None:
    plane.call("GET", "/admin/config", plane.admin_token("admin:config.read"))

    reply = plane.call(
        "GET", "/admin/audit?limit=5", plane.admin_token("admin:audit.read")
    )

    assert reply.status_code == 200
    events = reply.json()["events"]
    assert any(event["interaction"] == "admin.view" for event in events)
    bad = plane.call(
        "GET", "/admin/audit?limit=0", plane.admin_token("admin:audit.read")
    )
    assert bad.status_code == 400


def test_admin_unknown_route_and_kind_not_found(plane: AdminUnderTest) -> None:
    token = plane.admin_token("admin:keys.rotate")
    asked = [
        ("POST", "/admin/keys/nope/rotate", "key_kind"),
        ("GET", "/admin/nothing", "no_route"),
        ("DELETE", "/admin/config", "no_route"),  # a 405 is a 404 here
    ]
    for method, path, code in asked:
        before = len(plane.events())
        reply = plane.call(method, path, token)
        assert reply.status_code == 404
        assert reply.json()["errors"][0]["code"] == "not_found"
        assert "nope" not in reply.text
        # Refused, and audited like every refusal.
        [event] = plane.events()[before:]
        assert (event["outcome"], event["refusal_code"]) == ("refused", code)
        assert event["status"] == 404


def test_admin_reload_applies_new_settings(plane: AdminUnderTest) -> None:
    current = plane.app.settings
    limits = current.limits.model_copy(update={"default_rate": "7/minute"})
    fresh = current.model_copy(update={"limits": limits})
    plane.next_settings[0] = lambda: fresh

    reply = plane.call(
        "POST", "/admin/config/reload", plane.admin_token("admin:config.reload")
    )

    assert reply.status_code == 200 and reply.json()["reloaded"] is True
    assert plane.app.settings.limits.default_rate == "7/minute"


def _reload(plane: AdminUnderTest, **sections: Any) -> httpx.Response:
    current = plane.app.settings
    updates = {
        name: getattr(current, name).model_copy(update=fields)
        for name, fields in sections.items()
    }
    fresh = current.model_copy(update=updates)
    plane.next_settings[0] = lambda: fresh
    token = plane.admin_token("admin:config.reload")
    return plane.call("POST", "/admin/config/reload", token)


def test_admin_reload_applies_the_traffic_filter_and_address_lists(
    plane: AdminUnderTest,
) -> None:
    # Compiled once from the settings (filter rules, CIDR lists): a reload
    # that reports success must compile them again, not keep the old ones.
    headers = {"authorization": f"Bearer {plane.issuer.token()}"}
    assert plane.gateway.get("/fhir/Patient", headers=headers).status_code == 200

    reply = _reload(plane, waf={"deny_networks": ("127.0.0.0/8",)})
    assert reply.status_code == 200 and reply.json()["restart_needed_for"] == []
    plane.recorder.requests.clear()

    refused = plane.gateway.get("/fhir/Patient", headers=headers)
    assert refused.status_code == 403
    assert plane.recorder.requests == []


def test_admin_reload_applies_request_context_rules(plane: AdminUnderTest) -> None:
    context = base64.b64encode(json.dumps(SYSTEM_CONTEXT).encode()).decode()
    headers = {
        "authorization": f"Bearer {plane.issuer.token()}",
        "request-context": context,
    }
    assert plane.gateway.get("/fhir/Patient", headers=headers).status_code == 200

    purposes = ("TREAT",)
    authorise = plane.app.settings.authorise
    narrower = authorise.context.model_copy(update={"purpose_of_use": purposes})
    assert _reload(plane, authorise={"context": narrower}).status_code == 200
    plane.recorder.requests.clear()

    refused = plane.gateway.get("/fhir/Patient", headers=headers)
    assert refused.status_code == 400
    assert plane.recorder.requests == []


def test_admin_reload_refused_keeps_settings(plane: AdminUnderTest) -> None:
    before = plane.app.settings

    def broken() -> Settings:
        raise ConfigError("settings file kaitiaki.toml has mode 0644")

    plane.next_settings[0] = broken
    reply = plane.call(
        "POST", "/admin/config/reload", plane.admin_token("admin:config.reload")
    )

    assert reply.status_code == 400
    assert "0644" not in reply.text
    assert plane.app.settings is before
    assert plane.events()[-1]["refusal_code"] == "reload_refused"
