"""Kaitiaki: a zero-trust security gateway for New Zealand health-information APIs."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
