"""Route groups and FHIR request costs."""

from __future__ import annotations

import pytest

from kaitiaki.limits.config import CostSettings
from kaitiaki.limits.cost import bundle_entries, request_cost, route_group

COSTS = CostSettings()


@pytest.mark.parametrize(
    ("interaction", "path", "group"),
    [
        ("capabilities", "/fhir/metadata", "public"),
        ("read", "/fhir/Patient/a", "read"),
        ("vread", "/fhir/Patient/a/_history/2", "read"),
        ("search-type", "/fhir/Patient", "search"),
        ("search-type-post", "/fhir/Patient/_search", "search"),
        ("history-type", "/fhir/Patient/_history", "search"),
        ("create", "/fhir/Patient", "write"),
        ("delete", "/fhir/Patient/a", "write"),
        ("operation", "/fhir/Patient/a/$everything", "bulk"),
        (None, "/fhir/$export", "bulk"),
        ("operation", "/fhir/Patient/$export", "bulk"),
        ("operation", "/fhir/Patient/$validate", "operation"),
        ("something-new", "/fhir/Patient", "operation"),
        (None, "/fhir/Patient", "operation"),
    ],
)
def test_route_group_of_interaction(
    interaction: str | None, path: str, group: str
) -> None:
    assert route_group(interaction, path) == group


@pytest.mark.parametrize(
    ("group", "query", "cost"),
    [
        ("read", [], 1),
        ("search", [], 1),
        ("search", [("_count", "50")], 1),
        ("search", [("_count", "51")], 2),
        ("search", [("_count", "100")], 2),
        ("search", [("_count", "1000")], 20),
        ("search", [("_include", "Observation:patient")], 2),
        ("search", [("_revinclude", "Provenance:target")], 2),
        ("search", [("_include:iterate", "Patient:link")], 2),
        ("search", [("_include", "a"), ("_revinclude", "b"), ("_count", "200")], 6),
        ("search", [("subject.name", "x")], 2),
        ("search", [("_has:Observation:patient:code", "x")], 2),
        ("search", [("subject:Patient.name", "x")], 2),
        ("search", [("name", "a.b")], 1),
        ("read", [("_include", "ignored-on-read")], 1),
        ("operation", [], 5),
        ("bulk", [], 25),
        ("bulk", [("_count", "500")], 34),
    ],
)
def test_request_cost_table(
    group: str, query: list[tuple[str, str]], cost: int
) -> None:
    assert request_cost(group, query, COSTS) == cost  # type: ignore[arg-type]


def test_search_is_cheaper_than_everything_and_export() -> None:
    search = request_cost("search", [], COSTS)
    assert search < request_cost(
        route_group(None, "/fhir/Patient/a/$everything"), [], COSTS
    )
    assert search < request_cost(route_group(None, "/fhir/$export"), [], COSTS)


def test_bundle_entries_raise_cost() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{}, {}, {}]}
    entries = bundle_entries(bundle)
    assert entries == 3
    assert request_cost("write", [], COSTS, entries=entries) == 4
    assert bundle_entries({"resourceType": "Patient", "entry": [{}]}) == 0
    assert bundle_entries({"resourceType": "Bundle", "entry": "x"}) == 0
    assert bundle_entries(None) == 0


def test_costs_are_configurable() -> None:
    costs = CostSettings(search=3, include=4)
    assert request_cost("search", [("_include", "x")], costs) == 7
