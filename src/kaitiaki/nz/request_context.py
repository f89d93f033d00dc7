"""The Health NZ ``Request-Context`` header: decode, validate, re-encode.

The value is base64 (standard alphabet, padding optional; base64url is also
read) of a UTF-8 JSON object, validated against schema v1
(``json-schema/Request-Context.json``) or v2 (``Request-Context-v2.json``) of
Health NZ's schemas repository (catalogue §2), then against the operator's
allowed ``purposeOfUse`` and ``userRole`` sets, the HPI check characters, and
the token: a system context (``userRole`` ``110150``) must name the token's
client. A refusal names the failing member, never its value. What is
forwarded upstream is the validated model re-encoded canonically, never the
client's bytes, so nothing unvalidated can be smuggled through.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaitiaki.errors import Forbidden, InvalidRequestContext
from kaitiaki.memo import BoundedMemo
from kaitiaki.nz.identifiers import (
    HPI_FACILITY_SYSTEM,
    HPI_ORGANISATION_SYSTEM,
    HPI_PERSON_SYSTEM,
    is_valid_cpn,
    is_valid_hpi_facility,
    is_valid_hpi_organisation,
)
from kaitiaki.settings import RequestContextSettings
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = [
    "SYSTEM_ROLE",
    "RequestContext",
    "RequestContextReader",
    "parse_request_context",
]

SYSTEM_ROLE = "110150"
_NZ_NAMESPACE = "https://standards.digital.health.nz/ns/"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")
_V2_ONLY = (
    "hpiPractitioner",
    "hpiOrganisation",
    "hpiFacility",
    "registrationAuthorityNumber",
)


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Identifier(_Model):
    use: str = Field(max_length=32)
    system: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=64)


class ReferenceIdentifier(_Model):
    use: str | None = Field(default=None, max_length=32)
    system: str = Field(min_length=1, max_length=256)
    value: str = Field(min_length=1, max_length=64)


class HpiReference(_Model):
    type: Literal["Practitioner", "Organization", "Location"]
    identifier: ReferenceIdentifier
    display: str | None = Field(default=None, max_length=256)


class ContextV1(_Model):
    userIdentifier: str = Field(min_length=1, max_length=256)
    userRole: Literal["PROV", "PAT", "110150"]
    secondaryIdentifier: Identifier | None = None
    purposeOfUse: list[str] = Field(min_length=1, max_length=16)
    userFullName: str = Field(min_length=1, max_length=256)
    orgIdentifier: str | None = Field(default=None, max_length=16)
    facilityIdentifier: str | None = Field(default=None, max_length=16)


class ContextV2(_Model):
    userIdentifier: str = Field(min_length=1, max_length=256)
    userRole: Literal["PROV", "PAT"] | None = None
    hpiPractitioner: HpiReference | None = None
    registrationAuthorityNumber: ReferenceIdentifier | None = None
    hpiFacility: HpiReference | None = None
    hpiOrganisation: HpiReference | None = None
    secondaryIdentifier: Identifier | None = None
    purposeOfUse: list[str] = Field(min_length=1, max_length=16)
    userFullName: str = Field(min_length=1, max_length=256)
    orgIdentifier: str | None = Field(default=None, max_length=16)
    facilityIdentifier: str | None = Field(default=None, max_length=16)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """A validated Request-Context and its canonical header value."""

    version: str
    user_role: str | None
    purpose_of_use: tuple[str, ...]
    organisation: str | None
    facility: str | None
    encoded: str

    @property
    def is_system(self) -> bool:
        return self.user_role == SYSTEM_ROLE


def _refuse(detail: str, expression: str | None = None) -> InvalidRequestContext:
    return InvalidRequestContext(
        "The Request-Context header is not valid.",
        detail=f"request_context_{detail}",
        expression=f"Request-Context.{expression}" if expression else "Request-Context",
    )


def _decode(value: str, max_bytes: int) -> dict[str, Any]:
    text = value.strip()
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise _refuse("too_large")
    if not _BASE64.fullmatch(text):
        raise _refuse("not_base64")
    padded = text.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        raw = base64.b64decode(
            padded.replace("-", "+").replace("_", "/"), validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise _refuse("not_base64") from exc
    try:
        data = loads_strict(raw, max_depth=8)
    except StrictJSONError as exc:
        raise _refuse(f"json_{exc.reason}") from exc
    if not isinstance(data, dict):
        raise _refuse("not_object")
    return data


def _model(
    data: dict[str, Any], settings: RequestContextSettings
) -> ContextV1 | ContextV2:
    version = settings.schema_version
    if version == "auto":
        version = "v2" if any(name in data for name in _V2_ONLY) else "v1"
    if settings.accept_purpose_string and isinstance(data.get("purposeOfUse"), str):
        data = {**data, "purposeOfUse": [data["purposeOfUse"]]}
    model: type[ContextV1 | ContextV2] = ContextV2 if version == "v2" else ContextV1
    if settings.strict:
        unknown = sorted(set(data) - set(model.model_fields))
        if unknown:
            raise _refuse(
                "unknown_member", unknown[0] if len(unknown[0]) < 64 else None
            )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        location = exc.errors()[0]["loc"]
        path = ".".join(str(part) for part in location if isinstance(part, str))
        raise _refuse("schema", path or None) from exc


def _check_identifier(
    value: str | None,
    check: Callable[[str], bool],
    expression: str,
    allow: frozenset[str],
) -> None:
    if value is not None and value.upper() not in allow and not check(value):
        raise _refuse("identifier", expression)


def _check_reference(
    ref: HpiReference | None,
    *,
    kind: str,
    system: str,
    check: Callable[[str], bool],
    name: str,
    allow: frozenset[str],
) -> None:
    if ref is None:
        return
    if ref.type != kind or ref.identifier.system != system:
        raise _refuse("schema", f"{name}.identifier.system")
    _check_identifier(ref.identifier.value, check, f"{name}.identifier.value", allow)


# v2 member -> (reference type, identifier system, check)
_V2_REFERENCES: dict[str, tuple[str, str, Callable[[str], bool]]] = {
    "hpiPractitioner": ("Practitioner", HPI_PERSON_SYSTEM, is_valid_cpn),
    "hpiOrganisation": (
        "Organization",
        HPI_ORGANISATION_SYSTEM,
        is_valid_hpi_organisation,
    ),
    "hpiFacility": ("Location", HPI_FACILITY_SYSTEM, is_valid_hpi_facility),
}


def _check_identifiers(model: ContextV1 | ContextV2, allow: frozenset[str]) -> None:
    _check_identifier(
        model.orgIdentifier, is_valid_hpi_organisation, "orgIdentifier", allow
    )
    _check_identifier(
        model.facilityIdentifier, is_valid_hpi_facility, "facilityIdentifier", allow
    )
    secondary = model.secondaryIdentifier
    if secondary is not None:
        if not secondary.system.startswith(_NZ_NAMESPACE):
            raise _refuse("schema", "secondaryIdentifier.system")
        if secondary.system == HPI_PERSON_SYSTEM:
            _check_identifier(
                secondary.value, is_valid_cpn, "secondaryIdentifier.value", allow
            )
    if isinstance(model, ContextV2):
        for name, (kind, system, check) in _V2_REFERENCES.items():
            _check_reference(
                getattr(model, name),
                kind=kind,
                system=system,
                check=check,
                name=name,
                allow=allow,
            )


def _check_roles(
    model: ContextV1 | ContextV2, settings: RequestContextSettings, client_id: str
) -> None:
    if any(code not in settings.purpose_of_use for code in model.purposeOfUse):
        raise _refuse("purpose_of_use", "purposeOfUse")
    if model.userRole is not None and model.userRole not in settings.user_roles:
        raise _refuse("user_role", "userRole")
    if model.userRole == SYSTEM_ROLE:
        if model.userIdentifier != client_id:
            raise _refuse("system_client_mismatch", "userIdentifier")
        if model.secondaryIdentifier is not None:
            raise _refuse("system_secondary_identifier", "secondaryIdentifier")
        return
    if "@" in model.userIdentifier:
        raise _refuse("user_identifier_email", "userIdentifier")
    practitioner = getattr(model, "hpiPractitioner", None)
    needs_person = isinstance(model, ContextV1) or model.userRole == "PROV"
    if needs_person and model.secondaryIdentifier is None and practitioner is None:
        raise _refuse("schema", "secondaryIdentifier")


def _hpi_value(model: ContextV1 | ContextV2, reference: str, flat: str) -> str | None:
    """The v2 reference's identifier value, else the deprecated flat member."""
    ref = getattr(model, reference, None)
    if isinstance(ref, HpiReference):
        return ref.identifier.value.upper()
    value = getattr(model, flat)
    return value.upper() if isinstance(value, str) and value else None


def canonical_encoding(model: ContextV1 | ContextV2) -> str:
    """Standard base64, with padding, of compact JSON of the validated members."""
    data = model.model_dump(exclude_none=True)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _check_contract(
    context: RequestContext, settings: RequestContextSettings, client_id: str
) -> None:
    """A valid context the client's contract does not permit is 403, not 400."""
    purposes = settings.client_purposes.get(client_id)
    if purposes is not None and not set(context.purpose_of_use) <= set(purposes):
        raise Forbidden(
            "The declared purpose of use is not permitted for this client.",
            detail="request_context_purpose_not_contracted",
        )
    organisation = settings.client_organisations.get(client_id)
    if organisation is not None and context.organisation != organisation.upper():
        raise Forbidden(
            "The declared organisation is not registered for this client.",
            detail="request_context_organisation_mismatch",
        )


def _validated(
    value: str, settings: RequestContextSettings, allow: frozenset[str]
) -> tuple[ContextV1 | ContextV2, RequestContext]:
    """Everything that depends on the value alone, not on the client."""
    model = _model(_decode(value, settings.max_bytes), settings)
    _check_identifiers(model, allow)
    context = RequestContext(
        version="v2" if isinstance(model, ContextV2) else "v1",
        user_role=model.userRole,
        purpose_of_use=tuple(model.purposeOfUse),
        organisation=_hpi_value(model, "hpiOrganisation", "orgIdentifier"),
        facility=_hpi_value(model, "hpiFacility", "facilityIdentifier"),
        encoded=canonical_encoding(model),
    )
    return model, context


def parse_request_context(
    value: str,
    settings: RequestContextSettings,
    *,
    client_id: str,
    allow_list: tuple[str, ...] = (),
) -> RequestContext:
    """Decode and validate a header value.

    Raises :class:`InvalidRequestContext` (400) for an invalid value and
    :class:`Forbidden` (403) for a valid one the client's contract excludes.
    """
    return RequestContextReader(settings, allow_list, memo_size=0).read(
        value, client_id=client_id
    )


class RequestContextReader:
    """:func:`parse_request_context` under one set of settings, remembering
    the values that passed the checks that depend on the value alone.

    A client sends the same Request-Context on every request of a job, so
    decoding, schema validation, HPI check characters and the canonical
    encoding run once per value; the checks against the token's client (the
    system role's client id, the client's contract) run on every request.
    Invalid values are never remembered. Values longer than
    ``MEMO_MAX_CHARS`` are not remembered either, which bounds the memo's
    memory at about ``memo_size`` times that.
    """

    MEMO_MAX_CHARS = 2048

    def __init__(
        self,
        settings: RequestContextSettings,
        allow_list: tuple[str, ...] = (),
        *,
        memo_size: int = 2048,
    ) -> None:
        self.settings = settings
        self._allow = frozenset(allow_list)
        self._memo: BoundedMemo[str, tuple[ContextV1 | ContextV2, RequestContext]]
        self._memo = BoundedMemo(memo_size)

    def read(self, value: str, *, client_id: str) -> RequestContext:
        """The validated context of ``value`` sent by ``client_id``."""
        found = self._memo.get(value)
        if found is None:
            found = _validated(value, self.settings, self._allow)
            if len(value) <= self.MEMO_MAX_CHARS:
                self._memo.put(value, found)
        model, context = found
        _check_roles(model, self.settings, client_id)
        _check_contract(context, self.settings, client_id)
        return context

    def __len__(self) -> int:
        """How many values are remembered."""
        return len(self._memo)
