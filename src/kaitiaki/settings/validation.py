"""How much of a request's content the validate step checks, and how big that
content may be."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kaitiaki.settings.base import _Frozen

__all__ = ["ValidationSettings"]


class ValidationSettings(_Frozen):
    """Content rules beyond the wire format: FHIR structure, search
    parameters, JSON sizes, NZ identifiers (docs/configuration.md)."""

    fhir_structure: bool = True
    require_accept: bool = False
    response_validation: Literal["off", "log", "block"] = "off"
    search_parameters: Literal["definitions", "capability"] = "definitions"
    extra_search_parameters: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    allow_unknown_search_parameters: bool = False
    max_json_depth: int = Field(default=64, ge=8, le=256)
    max_json_members: int = Field(default=1000, ge=16, le=100_000)
    max_json_items: int = Field(default=10_000, ge=16, le=1_000_000)
    max_json_string: int = Field(default=1_048_576, ge=256, le=64 * 1_048_576)
    compressed_bodies: bool = False
    max_inflated_bytes: int = Field(default=4 * 1_048_576, ge=1024, le=64 * 1_048_576)
    max_inflate_ratio: int = Field(default=20, ge=2, le=1000)
    max_count: int = Field(default=100, ge=1, le=1000)
    check_nz_identifiers: bool = True
    # The upstream keys Patients by NHI: Patient ids must be valid NHIs.
    nhi_patient_ids: bool = False
    # Published test identifiers that fail their own check character, e.g. the
    # SDHR UAT fixtures ZMW9001..ZMW9009 (catalogue §3.2). Empty by default.
    identifier_allow_list: tuple[str, ...] = ()
