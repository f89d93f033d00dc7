"""The development issuer as a Starlette app: discovery, JWKS, token,
introspection and revocation. Only these handlers read the clock."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaitiaki.issuer.assertion import ReplayCache
from kaitiaki.issuer.grant import Issuer
from kaitiaki.issuer.refusals import InvalidClient, InvalidRequest, OAuthRefusal
from kaitiaki.issuer.state import ensure_state, load_state, signing_key_path
from kaitiaki.settings import DevIssuerSettings

__all__ = ["create_app"]

logger = logging.getLogger("kaitiaki.issuer")

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 32
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REALM = 'private_key_jwt realm="kaitiaki-dev-issuer"'


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body as a dict; each parameter at most once (§3.2)."""
    media_type = request.headers.get("content-type", "").split(";")[0]
    if media_type.strip().lower() != FORM_TYPE:
        raise InvalidRequest(f"the body must be {FORM_TYPE}")
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        raise InvalidRequest("the request body is too large")

    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequest("the request body is too large")

    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("the request body is not a valid form") from exc
    form = dict(pairs)
    if len(form) != len(pairs):
        raise InvalidRequest("a parameter appears more than once")
    return form


def refusal_response(refusal: OAuthRefusal) -> JSONResponse:
    """RFC 6749 §5.2 error response; the description never echoes input."""
    headers = dict(NO_STORE)
    if isinstance(refusal, InvalidClient):
        headers["WWW-Authenticate"] = REALM
    body = {"error": refusal.error, "error_description": refusal.description}
    return JSONResponse(body, status_code=refusal.status, headers=headers)


class _Current:
    """The issuer, reloaded when ``kaitiaki keys rotate issuer`` changed its key."""

    def __init__(self, issuer: Issuer) -> None:
        self._issuer = issuer
        self._stamp = self._key_stamp()

    def _key_stamp(self) -> int:
        path = signing_key_path(self._issuer.settings)
        return path.stat().st_mtime_ns if path.exists() else 0

    def get(self) -> Issuer:
        stamp = self._key_stamp()
        if stamp != self._stamp:
            state = load_state(self._issuer.settings)
            self._issuer = dataclasses.replace(self._issuer, state=state)
            self._stamp = stamp
            logger.info("issuer signing key reloaded: %s", state.signing_key.kid)
        return self._issuer


def _routes(current: _Current) -> list[Route]:
    async def metadata(request: Request) -> Response:
        return JSONResponse(current.get().metadata())

    async def jwks(request: Request) -> Response:
        # Short cache: a rotated key must reach the gateway within its overlap.
        headers = {"Cache-Control": "public, max-age=300"}
        return JSONResponse(current.get().state.public_jwks, headers=headers)

    async def token(request: Request) -> Response:
        issuer = current.get()
        try:
            form = await read_form(request)
            now = int(time.time())
            body = issuer.issue(
                form,
                now=now,
                jti=secrets.token_urlsafe(24),
                dpop=request.headers.getlist("dpop"),
            )
        except OAuthRefusal as refusal:
            logger.info("token request refused: %s", refusal.error)
            return refusal_response(refusal)
        logger.info("issued an access token with scope %s", body["scope"])
        return JSONResponse(body, headers=NO_STORE)

    async def introspect(request: Request) -> Response:
        issuer = current.get()
        try:
            form = await read_form(request)
            body = issuer.introspect(form, now=int(time.time()))
        except OAuthRefusal as refusal:
            logger.info("introspection refused: %s", refusal.error)
            return refusal_response(refusal)
        return JSONResponse(body, headers=NO_STORE)

    async def revoke(request: Request) -> Response:
        issuer = current.get()
        try:
            form = await read_form(request)
            revoked = issuer.revoke(form, now=int(time.time()))
        except OAuthRefusal as refusal:
            logger.info("revocation refused: %s", refusal.error)
            return refusal_response(refusal)
        logger.info("revocation request: %s", "revoked" if revoked else "no change")
        # RFC 7009 §2.2: 200 with an empty body, whatever the token was.
        return Response(b"", headers=NO_STORE)

    return [
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/token", token, methods=["POST"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
    ]


def create_app(settings: DevIssuerSettings) -> Starlette:
    """The issuer app for ``settings``.

    Calls :func:`ensure_state` first, so a first ``make run`` creates the
    keys and registry; later runs reuse them. Key problems raise
    :class:`~kaitiaki.errors.ConfigError` here, before anything listens.
    """
    ensure_state(settings)
    issuer = Issuer(settings, load_state(settings), ReplayCache())
    logger.warning("development issuer at %s: not for production", settings.url)
    return Starlette(routes=_routes(_Current(issuer)))
