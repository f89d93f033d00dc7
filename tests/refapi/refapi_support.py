"""Shared imports for the reference API tests."""

from __future__ import annotations

import warnings

from starlette.exceptions import StarletteDeprecationWarning

# Starlette warns once, on import, that its TestClient prefers httpx2; the
# locked dependencies carry httpx, which works. Only that warning is ignored.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["FHIR_JSON", "TestClient"]

FHIR_JSON = "application/fhir+json"
