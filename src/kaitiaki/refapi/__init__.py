"""The reference FHIR R4 API: synthetic NZ health information behind the gateway."""

from __future__ import annotations

from kaitiaki.refapi.app import create_app

__all__ = ["create_app"]
