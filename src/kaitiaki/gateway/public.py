"""Which paths below the FHIR base are served without a token."""

from __future__ import annotations

__all__ = ["is_public"]


def is_public(path: str, patterns: tuple[str, ...]) -> bool:
    """True when ``path`` is listed exactly, or under a listed ``prefix/*``.

    ``/.well-known/*`` matches ``/.well-known/smart-configuration`` but not
    ``/.well-known`` itself nor anything deeper than one segment.
    """
    for pattern in patterns:
        if pattern.endswith("/*"):
            prefix = pattern[:-1]
            rest = path[len(prefix) :]
            if path.startswith(prefix) and rest and "/" not in rest:
                return True
        elif path == pattern:
            return True
    return False
