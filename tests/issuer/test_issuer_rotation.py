"""The running issuer after ``kaitiaki keys rotate issuer``; admin-audience tokens."""

from __future__ import annotations

import time

from issuer_support import Forge, TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from kaitiaki.issuer import create_app
from kaitiaki.issuer.state import signing_key_ring
from kaitiaki.settings import DevIssuerSettings

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def _introspect(client: TestClient, forge: Forge, token: str) -> bool:
    form = {**forge.form(forge.assertion("demo-writer")), "token": token}
    del form["grant_type"]
    return bool(client.post("/introspect", data=form).json()["active"])


def test_issuer_rotation_old_token_stays_active_and_published(
    client: TestClient, forge: Forge, settings: DevIssuerSettings
) -> None:
    old = client.post("/token", data=forge.form()).json()["access_token"]

    rotation = signing_key_ring(settings).rotate(int(time.time()), 600)
    new = client.post("/token", data=forge.form()).json()["access_token"]
    jwks = client.get("/jwks").json()

    kids = [key["kid"] for key in jwks["keys"]]
    assert kids == [rotation.new_kid, rotation.retired_kid]
    assert all(not PRIVATE_MEMBERS & set(key) for key in jwks["keys"])
    public = KeySet.import_key_set(jwks)
    assert jwt.decode(old, public).claims["client_id"] == "demo-system"
    assert jwt.decode(new, public).header["kid"] == rotation.new_kid
    assert _introspect(client, forge, old) and _introspect(client, forge, new)


def test_issuer_admin_audience_on_request(settings: DevIssuerSettings) -> None:
    admin_settings = settings.model_copy(update={"admin_audience": "kaitiaki-admin"})
    with TestClient(create_app(admin_settings), base_url=settings.url) as client:
        forge = Forge(admin_settings)
        asked = client.post("/token", data=forge.form(resource="kaitiaki-admin"))
        plain = client.post("/token", data=forge.form())
        other = client.post("/token", data=forge.form(resource="https://elsewhere"))

    assert asked.status_code == 200 and plain.status_code == 200
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    keys = _signing_keys(admin_settings)
    assert jwt.decode(asked.json()["access_token"], keys).claims["aud"] == (
        "kaitiaki-admin"
    )
    assert jwt.decode(plain.json()["access_token"], keys).claims["aud"] == (
        settings.audience
    )


def _signing_keys(settings: DevIssuerSettings) -> KeySet:
    from kaitiaki.issuer.state import load_state

    return KeySet.import_key_set(load_state(settings).public_jwks)
