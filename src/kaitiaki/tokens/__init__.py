"""Access-token verification: JWTs against a cached, discovered JWKS."""

from kaitiaki.tokens.jwks import JwksCache
from kaitiaki.tokens.jwt import Principal, verify_access_token

__all__ = ["JwksCache", "Principal", "verify_access_token"]
