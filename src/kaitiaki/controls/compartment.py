"""Confine a request to the token's patient compartment (``patient/`` scopes).

Before the upstream: a search is pinned to the patient (every value of every
patient-bearing parameter must name the patient, and when none pins the
search the gateway adds the type's compartment parameter), and a read of a
Patient must name the patient. After it: every resource in the reply must be
in the patient's compartment (R4 CompartmentDefinition for Patient), so the
rule holds even when the upstream ignores the pin or an ``_include`` reaches
further (FHIR-01). Out-of-compartment ``_include``/``_revinclude`` entries are
removed; anything else outside refuses the reply: 404 for a single resource
(the same answer as "not there"), 403 for a search or history.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from kaitiaki.controls.labels import Rule, satisfies_rules
from kaitiaki.errors import (
    Forbidden,
    InsufficientScope,
    NotFound,
    Refusal,
    UpstreamFailed,
)
from kaitiaki.fhir.compartments import (
    in_patient_compartment,
    patient_parameters,
    pin_parameter,
    reference_patient,
)

__all__ = ["check_in_compartment", "filter_reply", "pin_search"]

logger = logging.getLogger("kaitiaki.authorise")

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_TYPED_REFERENCE = re.compile(
    r"(?:.*/)?(?P<type>[A-Z][A-Za-z]{1,63})/[A-Za-z0-9\-.]{1,64}"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _outside(detail: str) -> Forbidden:
    return Forbidden("The request is not permitted.", detail=detail)


def _names_patient(root: str, modifier: str, item: str, patient_id: str) -> bool:
    """True when ``item`` names the patient; False when it names another type.

    Anything that could name a different patient, or cannot be checked, is
    refused: this is the BODY-06 rule (every value of every parameter).
    """
    if root == "_id":
        if item != patient_id:
            raise _outside("compartment_other_patient")
        return True
    typed = _TYPED_REFERENCE.fullmatch(item)
    patient_only = root == "patient" or modifier == "Patient"
    if typed and typed.group("type") != "Patient" and not patient_only:
        return False
    named = reference_patient(item) if typed else item
    if named != patient_id:
        raise _outside("compartment_other_patient")
    return True


def _pins(name: str, value: str, bearing: frozenset[str], patient_id: str) -> bool:
    """Check one parameter; True when all its values name the patient."""
    root, _, modifier = name.split(".", 1)[0].partition(":")
    if root not in bearing:
        return False
    if (
        "." in name
        or (modifier and modifier != "Patient")
        or (root == "_id" and modifier)
    ):
        raise _outside("compartment_unverifiable_parameter")
    items = _UNESCAPED_COMMA.split(value)
    if not all(items):
        raise _outside("compartment_unverifiable_parameter")
    results = [_names_patient(root, modifier, item, patient_id) for item in items]
    return all(results)


def pin_search(
    resource_type: str, query: tuple[tuple[str, str], ...], patient_id: str
) -> tuple[tuple[str, str], ...]:
    """The query confined to ``patient_id``, or a refusal (before any upstream call)."""
    pin = pin_parameter(resource_type)
    if pin is None:
        raise _outside("compartment_type")
    bearing = patient_parameters(resource_type)
    pinned = False
    for name, value in query:
        pinned = _pins(name, value, bearing, patient_id) or pinned
    if pinned:
        return query
    value = patient_id if pin == "_id" else f"Patient/{patient_id}"
    return (*query, (pin, value))


def check_in_compartment(resource: dict[str, Any], patient_id: str) -> None:
    """A body written under ``patient/`` scopes must stay in the compartment."""
    if not in_patient_compartment(resource, patient_id):
        raise _outside("compartment_body")


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which resources a confined token may see in a reply."""

    patient_id: str | None
    open_types: frozenset[str] = frozenset()
    rules: tuple[Rule, ...] = ()
    # An operation's result (e.g. $everything) is assembled by the server, so
    # every resource outside is removed rather than refusing the reply.
    prune: bool = False

    def shows(self, resource: Any) -> bool:
        if self.rules and not satisfies_rules(resource, self.rules):
            return False
        if self.patient_id is None or in_patient_compartment(resource, self.patient_id):
            return True
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        return isinstance(kind, str) and bool({"*", kind} & self.open_types)


def _hidden(single: bool) -> Refusal:
    if single:
        return NotFound("The resource was not found.", detail="compartment_egress")
    return Forbidden("The request is not permitted.", detail="compartment_egress")


def _is_outcome(resource: Any) -> bool:
    return isinstance(resource, dict) and resource.get("resourceType") == (
        "OperationOutcome"
    )


def _searchset(entries: list[Any], seen: Visibility, single: bool) -> list[Any]:
    kept = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if _is_outcome(resource) or seen.shows(resource):
            kept.append(entry)
            continue
        search = entry.get("search") if isinstance(entry, dict) else None
        included = isinstance(search, dict) and search.get("mode") == "include"
        if not (included or seen.prune):
            raise _hidden(single)
    return kept


def _batch_entry(entry: Any, seen: Visibility) -> Any:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if resource is None or _is_outcome(resource):
        return entry
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
        try:
            _filter_bundle(resource, seen, single=False)
        except Refusal:
            return {"response": {"status": "403 Forbidden"}}
        return entry
    if seen.shows(resource):
        return entry
    return {"response": {"status": "404 Not Found"}}


def _filter_bundle(bundle: dict[str, Any], seen: Visibility, *, single: bool) -> bool:
    """Filter ``bundle`` in place; True when an entry was removed or replaced."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise UpstreamFailed("The upstream reply could not be checked.")
    kind = bundle.get("type")
    if kind == "searchset":
        kept = _searchset(entries, seen, single)
    elif kind in ("batch-response", "transaction-response"):
        kept = [_batch_entry(entry, seen) for entry in entries]
    else:
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if resource is not None and not seen.shows(resource):
                raise _hidden(single)
        kept = entries
    changed = kept != entries
    if changed:
        bundle["entry"] = kept
    return changed


def filter_reply(
    body: bytes,
    patient_id: str | None,
    *,
    single: bool,
    open_types: frozenset[str] = frozenset(),
    rules: tuple[Rule, ...] = (),
    prune: bool = False,
) -> bytes:
    """The upstream's JSON reply with only what the token may see in it.

    That is the patient's compartment, and resources of ``open_types``, which
    a ``system/`` or ``user/`` scope lets the token read anyway (``*``: all);
    with ``rules``, only resources meeting one of them.
    """
    seen = Visibility(patient_id, open_types, rules, prune)
    data = _parse(body)
    if _is_outcome(data):
        return _dump(data)
    if data.get("resourceType") == "Bundle":
        if _filter_bundle(data, seen, single=single):
            logger.info("removed resources outside the patient compartment")
        return _dump(data)
    if seen.shows(data):
        return _dump(data)
    raise _hidden(single)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _parse(body: bytes) -> dict[str, Any]:
    """Parse the reply once; what was checked is what is sent (see ``_dump``)."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise UpstreamFailed(
            "The upstream reply could not be checked.", detail="egress_unparseable"
        ) from exc
    if not isinstance(data, dict):
        raise UpstreamFailed(
            "The upstream reply could not be checked.", detail="egress_not_object"
        )
    return data


def _dump(data: dict[str, Any]) -> bytes:
    # Always re-serialised: with duplicate member names in the upstream's
    # reply, a client's parser could otherwise read a member we did not check.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        # A lone surrogate ("\ud800") in the reply: no UTF-8 can hold it.
        raise UpstreamFailed(
            "The upstream reply could not be checked.", detail="egress_unparseable"
        ) from exc


def valid_patient_id(value: str | None) -> str:
    """The token's ``patient`` claim, which ``patient/`` scopes need."""
    if value is None or not _ID.fullmatch(value):
        raise InsufficientScope(
            "The access token does not permit this request.",
            detail="no_patient_context",
        )
    return value
