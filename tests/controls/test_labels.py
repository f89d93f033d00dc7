"""Tag- and security-label-constrained scopes, checked on content."""

from __future__ import annotations

from typing import Any

import pytest

from kaitiaki.controls.labels import content_rules, satisfies_rules
from kaitiaki.fhir.scopes import parse_scopes

RF = "https://fhir-ig.digital.health.nz/rheumatic-fever/CodeSystem/nz-rheumaticfever-codesystem"
SCOPE = f"system/Appointment.crus?_tag={RF}|rf-nz"


def tagged(
    *tags: dict[str, str], security: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"tag": list(tags)}
    if security is not None:
        meta["security"] = security
    return {"resourceType": "Appointment", "meta": meta}


@pytest.mark.parametrize(
    ("scope", "letters", "rules"),
    [
        (SCOPE, "r", ((("_tag", f"{RF}|rf-nz"),),)),
        (SCOPE, "d", ()),
        (SCOPE + " system/Appointment.r", "r", ()),
        ("system/Appointment.rs?category=x", "r", ()),
        ("system/Appointment.rs?_tag=a&category=x", "r", ()),
    ],
)
def test_content_rules_only_when_needed_and_checkable(
    scope: str, letters: str, rules: tuple[Any, ...]
) -> None:
    assert content_rules(parse_scopes(scope).scopes, "Appointment", letters) == rules


@pytest.mark.parametrize(
    ("resource", "rule", "met"),
    [
        (tagged({"system": RF, "code": "rf-nz"}), f"{RF}|rf-nz", True),
        (tagged({"system": RF, "code": "other"}), f"{RF}|rf-nz", False),
        (tagged({"system": "https://x", "code": "rf-nz"}), f"{RF}|rf-nz", False),
        (tagged({"system": "https://x", "code": "rf-nz"}), "rf-nz", True),
        (tagged({"code": "rf-nz"}), "|rf-nz", True),
        (tagged({"system": RF, "code": "rf-nz"}), "|rf-nz", False),
        (tagged({"system": RF, "code": "b"}), f"{RF}|a,{RF}|b", True),
        (tagged(), f"{RF}|rf-nz", False),
        ({"resourceType": "Appointment", "meta": {"tag": "rf-nz"}}, "rf-nz", False),
        ({"resourceType": "Appointment"}, "rf-nz", False),
    ],
)
def test_tag_rules_match_codings(
    resource: dict[str, Any], rule: str, met: bool
) -> None:
    assert satisfies_rules(resource, ((("_tag", rule),),)) is met


def test_security_rules_read_meta_security() -> None:
    resource = tagged(
        security=[
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "ETH",
            }
        ]
    )
    assert satisfies_rules(resource, ((("_security", "ETH"),),))
    assert not satisfies_rules(resource, ((("_tag", "ETH"),),))
