"""Access-token verification: JWTs against a cached, discovered JWKS, opaque
tokens through introspection, DPoP proofs and certificate binding."""

from kaitiaki.tokens.jwks import JwksCache
from kaitiaki.tokens.jwt import verify_access_token
from kaitiaki.tokens.principal import Principal

__all__ = ["JwksCache", "Principal", "verify_access_token"]
