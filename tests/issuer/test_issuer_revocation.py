"""RFC 7009 revocation at the development issuer: published, client
authenticated, only the client's own tokens, and honoured by introspection."""

from __future__ import annotations

import pytest
from issuer_support import Forge, TestClient

from kaitiaki.issuer.grant import Revocations
from kaitiaki.issuer.refusals import TemporarilyUnavailable
from kaitiaki.settings import DevIssuerSettings


def _form(forge: Forge, client_id: str, token: str) -> dict[str, str]:
    form = {**forge.form(forge.assertion(client_id)), "token": token}
    del form["grant_type"]
    return form


def _active(client: TestClient, forge: Forge, token: str) -> bool:
    reply = client.post("/introspect", data=_form(forge, "demo-writer", token))
    return bool(reply.json()["active"])


def test_revocation_endpoint_published(
    client: TestClient, settings: DevIssuerSettings
) -> None:
    metadata = client.get("/.well-known/openid-configuration").json()

    assert metadata["revocation_endpoint"] == f"{settings.url}/revoke"
    assert metadata["revocation_endpoint_auth_methods_supported"] == ["private_key_jwt"]


def test_revoked_token_is_inactive(client: TestClient, forge: Forge) -> None:
    token = client.post("/token", data=forge.form()).json()["access_token"]
    assert _active(client, forge, token)

    reply = client.post("/revoke", data=_form(forge, "demo-system", token))

    assert reply.status_code == 200 and reply.content == b""
    assert reply.headers["cache-control"] == "no-store"
    assert not _active(client, forge, token)
    # Revoking again is still 200 (RFC 7009 §2.2).
    again = client.post("/revoke", data=_form(forge, "demo-system", token))
    assert again.status_code == 200


def test_another_clients_token_stays_active_and_is_not_told_apart(
    client: TestClient, forge: Forge
) -> None:
    """Not revoked, and answered exactly as an unknown token is, so that
    /revoke cannot tell a client whether a token it holds is live."""
    token = client.post("/token", data=forge.form()).json()["access_token"]

    reply = client.post("/revoke", data=_form(forge, "demo-writer", token))
    unknown = client.post("/revoke", data=_form(forge, "demo-writer", "a.b.c"))

    assert (reply.status_code, reply.content) == (200, b"")
    assert (unknown.status_code, unknown.content) == (200, b"")
    assert _active(client, forge, token)


def test_unknown_and_malformed_tokens_answer_200(
    client: TestClient, forge: Forge
) -> None:
    for token in ("not-a-token", forge.assertion(), "a.b.c"):
        reply = client.post("/revoke", data=_form(forge, "demo-system", token))
        assert reply.status_code == 200, token


def test_revocation_needs_client_authentication(
    client: TestClient, forge: Forge
) -> None:
    token = client.post("/token", data=forge.form()).json()["access_token"]

    reply = client.post("/revoke", data={"token": token})

    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    assert _active(client, forge, token)


def test_revocation_needs_a_token(client: TestClient, forge: Forge) -> None:
    form = _form(forge, "demo-system", "x")
    del form["token"]

    reply = client.post("/revoke", data=form)

    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request"


def test_revocations_are_bounded_and_never_forget_a_live_token() -> None:
    revoked = Revocations(capacity=2, per_client=2)
    revoked.revoke("a", 100, now=0, client_id="one")
    revoked.revoke("b", 200, now=0, client_id="two")
    with pytest.raises(TemporarilyUnavailable):
        revoked.revoke("c", 300, now=50, client_id="three")
    assert "a" in revoked and "b" in revoked
    revoked.revoke("c", 300, now=150, client_id="three")  # "a" expired: room
    assert "c" in revoked and "a" not in revoked


def test_one_client_cannot_use_up_the_room_of_the_others() -> None:
    revoked = Revocations(capacity=10, per_client=3)
    for n in range(3):
        revoked.revoke(f"mine-{n}", 1000, now=0, client_id="flooder")
    with pytest.raises(TemporarilyUnavailable):
        revoked.revoke("mine-3", 1000, now=0, client_id="flooder")
    assert "mine-3" not in revoked
    for n in range(7):  # everyone else still has the rest of the room
        revoked.revoke(f"other-{n}", 1000, now=0, client_id=f"client-{n}")
    assert all(f"other-{n}" in revoked for n in range(7))
    # Once the flooder's own entries expire, it may revoke again.
    revoked.revoke("mine-4", 2000, now=1000, client_id="flooder")
    assert "mine-4" in revoked and "mine-0" not in revoked
