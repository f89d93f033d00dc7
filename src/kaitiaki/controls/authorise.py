"""Request-level authorisation: do the token's scopes cover this interaction?

Every routed interaction needs SMART letters on the resource type it names;
a search also needs ``rs`` on every type it reaches through ``_include``,
``_revinclude``, ``_has`` and chained parameters (only a wildcard covers a
type the request does not name). ``system/`` and ``user/`` scopes grant on
any resource; when a request is covered only with the help of ``patient/``
scopes it is confined to the token's patient compartment
(:mod:`kaitiaki.controls.compartment`). System-level search and history need
a ``system/`` scope; ``$operations`` need the OperationDefinition URL as a
scope. A refusal is 403 before any upstream call and never says whether data
exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kaitiaki.controls.compartment import pin_search, valid_patient_id
from kaitiaki.controls.labels import Rule, content_rules
from kaitiaki.errors import Forbidden, InsufficientScope
from kaitiaki.fhir.compartments import PATIENT_COMPARTMENT
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.fhir.scopes import Grants, Satisfies, Scope, covers, covers_all_types
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import AuthoriseSettings

__all__ = ["Decision", "authorise", "reached_types"]

_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_WILDCARD = "*"
_PUBLIC = frozenset({"capabilities", "well-known"})
_SYSTEM_LEVEL = frozenset({"search-system", "search-system-post", "history-system"})
_FHIR_OPERATIONS = "http://hl7.org/fhir/OperationDefinition/"
_CONTENT_CHECKED = frozenset({"read", "vread", "history-instance", "create"})


@dataclass(frozen=True, slots=True)
class Decision:
    """What authorisation allows: the (pinned) request, and its confinement."""

    request: CanonicalRequest
    patient: str | None = None
    # Content rules from constrained scopes (``?_tag=``), any one of which the
    # resource read or created must meet.
    rules: tuple[Rule, ...] = ()

    @property
    def confined(self) -> bool:
        return self.patient is not None


def _refuse(detail: str) -> InsufficientScope:
    return InsufficientScope(
        "The access token does not permit this request.", detail=detail
    )


def _include_targets(name: str, value: str) -> set[str]:
    # _include=Source:param[:Target]; _revinclude reaches Source.
    parts = value.split(":")
    if parts[0] == "*" or len(parts) < 2:
        return {_WILDCARD}
    if name.startswith("_revinclude"):
        return {parts[0]}
    return {parts[2]} if len(parts) > 2 and _TYPE.fullmatch(parts[2]) else {_WILDCARD}


def _chain_targets(name: str) -> set[str]:
    if name.startswith("_has:"):
        parts = name.split(":")
        return (
            {parts[1]} if len(parts) > 1 and _TYPE.fullmatch(parts[1]) else {_WILDCARD}
        )
    targets: set[str] = set()
    for link in name.split(".")[:-1]:
        modifier = link.partition(":")[2]
        targets.add(modifier if _TYPE.fullmatch(modifier) else _WILDCARD)
    return targets


def reached_types(request: CanonicalRequest) -> set[str]:
    """Resource types a search reaches besides its own."""
    reached: set[str] = set()
    for name, value in request.query:
        if name.startswith(("_include", "_revinclude")):
            for item in value.split(","):
                reached |= _include_targets(name, item)
        elif name.startswith("_has:") or "." in name:
            reached |= _chain_targets(name)
    return reached


def _satisfied_by(query: tuple[tuple[str, str], ...]) -> Satisfies:
    """A scope constraint holds when the query pins each parameter to its values."""

    def satisfies(constraint: tuple[tuple[str, str], ...]) -> bool:
        for name, allowed in constraint:
            values = [value for key, value in query if key == name]
            permitted = set(allowed.split(","))
            if not values or any(
                not set(value.split(",")) <= permitted for value in values
            ):
                return False
        return True

    return satisfies


def _coverage(
    grants: Grants,
    needs: Iterable[tuple[str, str]],
    query: tuple[tuple[str, str], ...] | None,
) -> bool:
    """True when confined to the patient compartment; refuses when not covered."""
    satisfies = _satisfied_by(query) if query is not None else None
    unconfined = grants.in_context("system", "user")
    patient = tuple(
        scope
        for scope in grants.in_context("patient")
        if scope.resource_type in (_WILDCARD, "Patient", *PATIENT_COMPARTMENT)
    )
    confined = False
    for resource_type, letters in needs:
        if _covered(unconfined, resource_type, letters, satisfies):
            continue
        if resource_type not in (_WILDCARD, *PATIENT_COMPARTMENT):
            raise _refuse("scope_type")
        if not _covered(patient, resource_type, letters, satisfies):
            raise _refuse("scope_type")
        confined = True
    return confined


def _covered(
    scopes: tuple[Scope, ...],
    resource_type: str,
    letters: str,
    satisfies: Satisfies | None,
) -> bool:
    if resource_type == _WILDCARD:
        return covers_all_types(scopes, letters)
    return covers(scopes, resource_type, letters, satisfies)


def _system_level(
    grants: Grants, interaction: Interaction, request: CanonicalRequest
) -> None:
    """Whole-system search and history need ``system/`` scopes (FHIR-06)."""
    system = grants.in_context("system")
    types = {
        item
        for name, value in request.query
        if name == "_type"
        for item in value.split(",")
    }
    if interaction.name == "history-system" or not types:
        types = {_WILDCARD}
    for resource_type in types | reached_types(request):
        if not _covered(system, resource_type, interaction.letters or "rs", None):
            raise _refuse("scope_system_level")


def operation_urls(
    interaction: Interaction, settings: AuthoriseSettings
) -> tuple[str, ...]:
    """The OperationDefinition URLs whose scope allows this ``$operation``."""
    name = interaction.operation or ""
    configured = settings.operations.get(name)
    if configured is not None:
        return (configured,)
    kind = interaction.resource_type or "Resource"
    return (f"{_FHIR_OPERATIONS}{kind}-{name}", f"{_FHIR_OPERATIONS}Resource-{name}")


def _operation(
    grants: Grants,
    interaction: Interaction,
    settings: AuthoriseSettings,
    patient: str | None,
) -> str | None:
    if not grants.operations & set(operation_urls(interaction, settings)):
        raise _refuse("scope_operation")
    if grants.has_unconfined_scopes or not grants.has_patient_scopes:
        return None
    patient_id = valid_patient_id(patient)
    if (
        interaction.name != "operation-instance"
        or interaction.resource_type != "Patient"
    ):
        raise Forbidden("The request is not permitted.", detail="compartment_operation")
    if interaction.resource_id != patient_id:
        raise Forbidden(
            "The request is not permitted.", detail="compartment_other_patient"
        )
    return patient_id


def _needs(
    interaction: Interaction, request: CanonicalRequest
) -> list[tuple[str, str]]:
    resource_type = interaction.resource_type or _WILDCARD
    needs = [(resource_type, interaction.letters)]
    if interaction.is_search:
        needs += [(reached, "rs") for reached in sorted(reached_types(request))]
    return needs


def _confine(
    interaction: Interaction, request: CanonicalRequest, patient_id: str
) -> CanonicalRequest:
    """Pin or refuse a confined request before it goes anywhere."""
    resource_type = interaction.resource_type or ""
    if interaction.is_search:
        query = pin_search(resource_type, request.query, patient_id)
        return replace(request, query=query)
    if interaction.name in ("create",):
        return request
    if resource_type == "Patient" and interaction.resource_id is not None:
        if interaction.resource_id != patient_id:
            raise Forbidden(
                "The request is not permitted.", detail="compartment_other_patient"
            )
        return request
    if interaction.name in ("read", "vread", "history-instance"):
        return request
    raise Forbidden(
        "The request is not permitted.", detail=f"compartment_{interaction.name}"
    )


def authorise(
    grants: Grants,
    interaction: Interaction,
    request: CanonicalRequest,
    settings: AuthoriseSettings,
    *,
    patient: str | None = None,
) -> Decision:
    """Decide one interaction; ``patient`` is the token's launch patient."""
    if interaction.name in _PUBLIC or interaction.name == "batch":
        return Decision(request)
    if interaction.name in _SYSTEM_LEVEL:
        _system_level(grants, interaction, request)
        return Decision(request)
    if interaction.is_operation:
        return Decision(request, _operation(grants, interaction, settings, patient))

    if interaction.name in _CONTENT_CHECKED and interaction.resource_type:
        unconfined = grants.in_context("system", "user")
        kind, letters = interaction.resource_type, interaction.letters
        rules = content_rules(unconfined, kind, letters)
        if rules:
            return Decision(request, rules=rules)

    query = request.query if interaction.is_search else None
    if not _coverage(grants, _needs(interaction, request), query):
        return Decision(request)
    patient_id = valid_patient_id(patient)
    return Decision(_confine(interaction, request, patient_id), patient_id)
