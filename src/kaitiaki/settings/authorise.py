"""Authorisation policy: grants, assurance levels, route policies and how the
Health NZ ``Request-Context`` header is checked."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from kaitiaki.fhir.interactions import INTERACTION_NAMES
from kaitiaki.settings.base import _Frozen

__all__ = [
    "DEFAULT_PURPOSES",
    "AuthoriseSettings",
    "GrantPolicy",
    "RequestContextSettings",
    "RoutePolicy",
]

#: HL7 v3 PurposeOfUse codes, the v2 schema's SCREENING and the NZ codes
#: (catalogue §2.4); NOTSUPPLIED is an audit-only marker and not accepted.
DEFAULT_PURPOSES = (
    "BIORCH", "BTG", "CAREMGT", "CLINTRCH", "CLINTRL", "CLMATTCH", "COC",
    "COVAUTH", "COVERAGE", "DECEASED", "DISASTER", "DONAT", "DSRCH", "ELIGDTRM",
    "ELIGVER", "ENROLLM", "ERTREAT", "ETREAT", "FAMRQT", "FRAUD", "GOV",
    "HACCRED", "HCOMPL", "HDECD", "HDIRECT", "HDM", "HLEGAL", "HMARKT",
    "HOPERAT", "HOUTCOMS", "HPAYMT", "HPRGRP", "HQUALIMP", "HRESCH",
    "HSYSADMIN", "HTEST", "LABELING", "MEMADMIN", "METAMGT", "MILCDM",
    "MILDCRG", "PATADMIN", "PATRQT", "PATSFTY", "PERFMSR", "POARCH", "POPHLTH",
    "PRECLINTRCH", "PUBHLTH", "PWATRNY", "RECORDMGT", "REMITADV", "SCREENING",
    "SUPNWK", "SYSDEV", "THREAT", "TRAIN", "TRANSRCH", "TREAT",
    "NZLEG", "NZRISK", "NZCHILD", "NZSCREEN",
)  # fmt: skip

GrantPolicy = Literal["forbid", "with_request_context", "allow"]


class RequestContextSettings(_Frozen):
    """How the Health NZ ``Request-Context`` header is decoded and checked."""

    schema_version: Literal["v1", "v2", "auto"] = "auto"
    max_bytes: int = Field(default=4096, ge=256, le=16384)
    purpose_of_use: tuple[str, ...] = DEFAULT_PURPOSES
    user_roles: tuple[str, ...] = ("PROV", "PAT", "110150")
    # additionalProperties: false, as the standard's example spec declares it.
    strict: bool = False
    # The RF guide shows purposeOfUse as one string; the schemas need an array.
    accept_purpose_string: bool = False
    # Contracts per client id: the purposes it may declare, the organisation
    # it is registered for (catalogue §2.6 rules 4 and 7). Unlisted: no limit.
    client_purposes: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    client_organisations: dict[str, str] = Field(default_factory=dict)


class RoutePolicy(_Frozen):
    """A named policy for some interactions on some resource types.

    Empty ``interactions`` or ``resource_types`` match every one; unset
    fields fall back to the ``[authorise]`` defaults.
    """

    name: str
    interactions: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] = ()
    client_credentials: GrantPolicy | None = None
    min_acr: str | None = None
    request_context: Literal["required", "optional"] | None = None
    # The data classification of what the route serves (catalogue CLS-01):
    # `kaitiaki check-config` asks for it; unset counts as MEDICAL IN-CONFIDENCE.
    classification: Literal["UNCLASSIFIED", "MEDICAL IN-CONFIDENCE"] | None = None

    @field_validator("interactions")
    @classmethod
    def _known_interactions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A misspelt name would silently match nothing and weaken the policy.
        unknown = sorted(set(value) - INTERACTION_NAMES)
        if unknown:
            raise ValueError(
                f"unknown interactions {unknown}; choose from "
                f"{sorted(INTERACTION_NAMES)}"
            )
        return value


class AuthoriseSettings(_Frozen):
    """Grant, assurance and Request-Context policy; the first matching route wins."""

    client_credentials: GrantPolicy = "with_request_context"
    min_acr: str = "3"
    acr_levels: tuple[str, ...] = ("0", "1", "2", "3")
    request_context: Literal["required", "optional"] = "optional"
    required_scopes: tuple[str, ...] = ()
    # URL prefixes of SMART scopes meant for this API, besides its own base URL
    # (Health NZ writes https://api.hip.digital.health.nz/fhir/system/Patient.r).
    scope_prefixes: tuple[str, ...] = ()
    operations: dict[str, str] = Field(default_factory=dict)
    max_bundle_entries: int = Field(default=100, ge=1, le=1000)
    routes: tuple[RoutePolicy, ...] = ()
    context: RequestContextSettings = RequestContextSettings()

    @model_validator(mode="after")
    def _acr_levels_known(self) -> AuthoriseSettings:
        wanted = [self.min_acr, *(r.min_acr for r in self.routes if r.min_acr)]
        unknown = sorted(set(wanted) - set(self.acr_levels))
        if unknown:
            raise ValueError(
                f"min_acr values {unknown} are not in acr_levels "
                f"{list(self.acr_levels)} (lowest first)"
            )
        return self
