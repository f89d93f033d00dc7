"""The traffic filter's thresholds, inspected headers, rule exclusions per
route and network lists."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kaitiaki.settings.base import _check_networks, _Frozen

__all__ = ["WafExclusion", "WafSettings"]


class WafExclusion(_Frozen):
    """Rules switched off for one route (a template or a path prefix)."""

    route: str
    rules: tuple[str, ...]
    targets: tuple[Literal["path", "query", "header", "body", "narrative"], ...] = ()

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Imported here: kaitiaki.waf itself imports these settings.
        from kaitiaki.waf.rules import rule_ids

        unknown = sorted(set(value) - rule_ids())
        if unknown or not value:
            raise ValueError(
                f"unknown rule ids {unknown}; the ids are listed in "
                "src/kaitiaki/waf/rules.py and appear in audit events (waf_rules)"
            )
        return value


class WafSettings(_Frozen):
    """The traffic filter: anomaly scoring like OWASP CRS, FHIR-aware."""

    enabled: bool = True
    detection_only: bool = False
    paranoia_level: int = Field(default=1, ge=1, le=4)
    inbound_threshold: int = Field(default=5, ge=1, le=100)
    # "*": every header but the credentials; or a list of header names.
    inspected_headers: tuple[str, ...] = ("*",)
    exclusions: tuple[WafExclusion, ...] = ()
    allow_networks: tuple[str, ...] = ()
    deny_networks: tuple[str, ...] = ()

    @field_validator("allow_networks", "deny_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)
