"""The validate step's decisions that need the loaded definitions.

``Validator`` holds what is loaded once at start-up (HL7's R4 schema and the
search-parameter table) and decides: the URL's resource type exists, search
parameters are supported, a compressed body is inflated within its caps,
and (optionally) an upstream FHIR reply has the structure it should.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Any

from kaitiaki.errors import (
    InvalidContent,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    UpstreamFailed,
)
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.fhir.search import SearchDefinitions
from kaitiaki.fhir.structure import FhirDefinitions
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import ValidationSettings
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = ["Validator", "inflate"]

logger = logging.getLogger("kaitiaki.validate")

_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
# The parameters an interaction without search takes (FHIR R4 §3.1.0.1.7
# and §3.1.1.0.1): any other is refused, so nothing unchecked in a query
# reaches the upstream.
_FORMAT_PARAMETERS = frozenset({"_format", "_pretty", "_summary", "_elements"})
_ROUTE_PARAMETERS = {
    "capabilities": _FORMAT_PARAMETERS | {"mode"},
    "read": _FORMAT_PARAMETERS,
    "vread": _FORMAT_PARAMETERS,
}


def inflate(body: bytes, encoding: str, settings: ValidationSettings) -> bytes:
    """Inflate a request body (after authentication) within size and ratio caps."""
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        raise UnsupportedMediaType(
            "The content encoding is not supported.", detail="content_encoding"
        )
    cap = min(settings.max_inflated_bytes, settings.max_inflate_ratio * len(body))
    inflater = zlib.decompressobj(wbits)
    try:
        inflated = inflater.decompress(body, cap + 1)
    except zlib.error as exc:
        raise InvalidContent(
            "The compressed request body is malformed.",
            issue_code="structure",
            detail="content_encoding_malformed",
            expression=None,
        ) from exc
    if len(inflated) > cap or inflater.unconsumed_tail:
        raise PayloadTooLarge(
            "The request body is too large once inflated.", detail="inflate_cap"
        )
    if not inflater.eof or inflater.unused_data:
        raise InvalidContent(
            "The compressed request body is malformed.",
            issue_code="structure",
            detail="content_encoding_malformed",
            expression=None,
        )
    return inflated


@dataclass(frozen=True)
class Validator:
    """Definitions loaded once; the decisions of the validate step."""

    settings: ValidationSettings
    definitions: FhirDefinitions
    search: SearchDefinitions

    @classmethod
    def load(
        cls, settings: ValidationSettings, capability: dict[str, Any] | None = None
    ) -> Validator:
        allow = settings.allow_unknown_search_parameters
        if capability is not None:
            search = SearchDefinitions.from_capability(capability, allow_unknown=allow)
        else:
            search = SearchDefinitions.load_r4(
                settings.extra_search_parameters, allow_unknown=allow
            )
        return cls(settings, FhirDefinitions.load_r4(), search)

    def check_route(self, interaction: Interaction, request: CanonicalRequest) -> None:
        """A resource type FHIR R4 does not define is no route (404); the
        capabilities, read and vread interactions take only their own
        parameters."""
        resource_type = interaction.resource_type
        if resource_type is not None and (
            resource_type not in self.definitions.resource_types
        ):
            raise NotFound("No route matches the request.", detail="no_route")
        allowed = _ROUTE_PARAMETERS.get(interaction.name)
        if allowed is not None:
            for position, (name, _) in enumerate(request.query):
                if name not in allowed:
                    raise InvalidContent(
                        "A parameter is not supported for this interaction.",
                        issue_code="value",
                        detail="search_parameter",
                        expression=f"parameter[{position}]",
                    )

    def check_search(self, request: CanonicalRequest, interaction: Interaction) -> None:
        if interaction.resource_type is not None:
            self.search.check(interaction.resource_type, request.query)

    def check_resource(self, resource: dict[str, Any]) -> None:
        if self.settings.fhir_structure:
            self.definitions.check(resource)

    def check_reply(self, content_type: str, body: bytes) -> None:
        """Check an upstream FHIR JSON reply: log, or refuse it (502), by mode."""
        mode = self.settings.response_validation
        if mode == "off" or not body or "json" not in content_type.lower():
            return
        try:
            self.definitions.check(loads_strict(body, max_depth=128))
        except (StrictJSONError, InvalidContent) as exc:
            reason = getattr(exc, "expression", None) or getattr(exc, "reason", "-")
            logger.warning("upstream reply failed validation at %s", reason)
            if mode == "block":
                raise UpstreamFailed(
                    "The upstream reply was not valid FHIR.",
                    detail="upstream_invalid_reply",
                ) from exc
