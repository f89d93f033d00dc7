"""Patient ids that are NHIs, for upstreams keyed by NHI (opt-in).

The NHI API and several HNZ guides use the NHI itself as the Patient id
(``Patient/ZJM9397``) and pass bare NHIs in ``patient=``/``beneficiary=``.
With ``validation.nhi_patient_ids`` on, every Patient id the gateway can see
must then be a valid NHI: the URL's id on Patient routes, Patient references
in search values (``patient=``, ``subject=Patient/...``, ``subject:Patient=``,
absolute ``.../Patient/X`` URLs) and ``reference`` strings in bodies. Off by
default: elsewhere Patient ids are opaque server ids.
"""

from __future__ import annotations

import re
from typing import Any

from kaitiaki.errors import InvalidContent
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.nz.identifiers import is_valid_nhi
from kaitiaki.settings import ValidationSettings

__all__ = ["check_patient_ids"]

# Search parameters whose bare value is a Patient id in R4 core and HNZ IGs.
_PATIENT_PARAMETERS = frozenset({"patient", "beneficiary", "subscriber", "link"})
_TYPED_PARAMETERS = frozenset({"subject", "focus", "actor", "author", "requester"})
_REFERENCE = re.compile(r"(?:^|/)Patient/([^/]+)(?:/_history/[^/]+)?$")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def _refuse(expression: str) -> InvalidContent:
    return InvalidContent(
        "An NZ health identifier is not valid (format or check character).",
        issue_code="value",
        detail="nz_patient_id",
        expression=expression,
    )


def _valid(value: str, settings: ValidationSettings) -> bool:
    return value.upper() in settings.identifier_allow_list or is_valid_nhi(value)


def _search_ids(name: str, value: str) -> list[str]:
    base, _, modifier = name.partition(":")
    if "." in base or modifier not in ("", "Patient"):
        return []
    ids = []
    for token in _UNESCAPED_COMMA.split(value):
        found = _REFERENCE.search(token)
        if found is not None:
            ids.append(found.group(1))
        elif "/" not in token and (base in _PATIENT_PARAMETERS or modifier):
            ids.append(token)
    return ids if base in _PATIENT_PARAMETERS | _TYPED_PARAMETERS else []


def _body_references(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str):
            match = _REFERENCE.search(reference)
            if match is not None:
                found.append(match.group(1))
        for child in node.values():
            if isinstance(child, dict | list):
                _body_references(child, found)
    elif isinstance(node, list):
        for child in node:
            if isinstance(child, dict | list):
                _body_references(child, found)


def check_patient_ids(
    interaction: Interaction,
    query: tuple[tuple[str, str], ...],
    resource: dict[str, Any] | None,
    settings: ValidationSettings,
) -> None:
    """Refuse a Patient id that is not a valid NHI, when the setting asks."""
    if not settings.nhi_patient_ids:
        return
    on_patient = interaction.resource_type == "Patient"
    path_id = interaction.resource_id if on_patient else None
    if path_id is not None and not _valid(path_id, settings):
        raise _refuse("Patient.id")
    for position, (name, value) in enumerate(query):
        ids = value.split(",") if on_patient and name == "_id" else []
        ids += _search_ids(name, value)
        if not all(_valid(item, settings) for item in ids):
            raise _refuse(f"parameter[{position}]")
    if resource is not None:
        found: list[str] = []
        _body_references(resource, found)
        if not all(_valid(item, settings) for item in found):
            raise _refuse("reference")
