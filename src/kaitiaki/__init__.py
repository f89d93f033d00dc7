"""Kaitiaki: a zero-trust security gateway for New Zealand health-information APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "protect"]

if TYPE_CHECKING:
    from kaitiaki.middleware import protect


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line starts without the gateway.
    if name == "protect":
        from kaitiaki.middleware import protect

        return protect
    raise AttributeError(f"module 'kaitiaki' has no attribute {name!r}")
