"""The development authorisation server: client credentials with
``private_key_jwt``, RFC 9068 access tokens, discovery, JWKS, introspection.

For the demo and tests only; never for production.
"""

from __future__ import annotations

from kaitiaki.issuer.app import create_app
from kaitiaki.issuer.client import TokenResponse, fetch_token, fetch_token_sync
from kaitiaki.issuer.refusals import TokenRequestFailed
from kaitiaki.issuer.state import ensure_state
from kaitiaki.issuer.tokens import sign_access_token

__all__ = [
    "TokenRequestFailed",
    "TokenResponse",
    "create_app",
    "ensure_state",
    "fetch_token",
    "fetch_token_sync",
    "sign_access_token",
]
