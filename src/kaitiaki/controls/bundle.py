"""Batch and transaction Bundles (``POST [base]``), authorised entry by entry.

Each entry is decided as if it were sent alone (FHIR-03): its method and URL
are routed like a request (the same path rule, the same routes), its body
must be a resource of the URL's type, its identifiers and search parameters
are validated, and its interaction is authorised with the token's scopes,
the route policies and the patient compartment. A search entry the
compartment rule pins is rewritten, and the Bundle is re-serialised from
what was checked. If any entry is refused the whole Bundle is refused: a
transaction cannot be split, and a batch answered for only some entries
would tell the client, entry by entry, what the gateway would not forward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from kaitiaki.controls.authorise import Decision, authorise
from kaitiaki.controls.compartment import check_in_compartment
from kaitiaki.controls.identifiers import check_resource_identifiers, check_search
from kaitiaki.controls.labels import satisfies_rules
from kaitiaki.controls.policy import apply_policy
from kaitiaki.controls.validate import check_json_body
from kaitiaki.errors import BadRequest, Forbidden, InsufficientScope, Refusal
from kaitiaki.fhir.interactions import Interaction, match_interaction
from kaitiaki.fhir.scopes import Grants
from kaitiaki.request import CanonicalRequest, canonical_path, encode_query, parse_query
from kaitiaki.settings import Settings
from kaitiaki.tokens.jwt import Principal

__all__ = ["BundleDecision", "authorise_bundle"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_NOT_IN_BUNDLES = frozenset({"batch", "capabilities", "well-known"})
_PATCH_TYPES = frozenset({"Parameters", "Binary"})


@dataclass(frozen=True, slots=True)
class BundleDecision:
    body: bytes
    patient: str | None


def _invalid(message: str, index: int | None, detail: str) -> BadRequest:
    where = "Bundle.entry" if index is None else f"Bundle.entry[{index}]"
    return BadRequest(message, detail=detail, expression=where)


def _parse(body: bytes, settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    max_entries = settings.authorise.max_bundle_entries
    bundle = check_json_body(body, settings.validation)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest(
            "A request to the base must be a Bundle.",
            detail="bundle_not_bundle",
            expression="resourceType",
        )
    if bundle.get("type") not in ("batch", "transaction"):
        raise BadRequest(
            "The Bundle must be a batch or a transaction.",
            detail="bundle_type",
            expression="Bundle.type",
        )
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or len(entries) > max_entries:
        raise _invalid("The Bundle has too many entries.", None, "bundle_entries")
    return bundle, entries


@dataclass(frozen=True, slots=True)
class _Entry:
    index: int
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    resource: Any


def _entry(raw: Any, index: int, settings: Settings) -> _Entry:
    request = raw.get("request") if isinstance(raw, dict) else None
    method = request.get("method") if isinstance(request, dict) else None
    url = request.get("url") if isinstance(request, dict) else None
    if method not in _METHODS or not isinstance(url, str) or not url.isascii():
        raise _invalid("A Bundle entry has no valid request.", index, "bundle_request")
    base = settings.gateway.base_url
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or parts.fragment or url.startswith("/"):
        raise _invalid("A Bundle entry URL must be relative.", index, "bundle_url")
    limit = settings.gateway.max_uri_bytes
    path = canonical_path(("/" + parts.path).encode("ascii"), max_bytes=limit)
    query = parse_query(parts.query.encode("ascii"), max_bytes=limit)
    return _Entry(index, str(method), path, query, raw.get("resource"))


def _check_resource(
    entry: _Entry, interaction: Interaction, settings: Settings
) -> None:
    resource = entry.resource
    if not interaction.has_body:
        if resource is not None:
            raise _invalid(
                "This Bundle entry takes no resource.", entry.index, "bundle_body"
            )
        return
    if not isinstance(resource, dict):
        raise _invalid(
            "A Bundle entry resource is missing.", entry.index, "bundle_body"
        )
    kind = resource.get("resourceType")
    if interaction.name == "patch":
        expected_ok = kind in _PATCH_TYPES
    else:
        expected_ok = kind == interaction.resource_type
    if not expected_ok:
        raise _invalid(
            "A Bundle entry resourceType does not match its URL.",
            entry.index,
            "bundle_resource_type",
        )
    if interaction.name == "update" and resource.get("id") != interaction.resource_id:
        raise _invalid(
            "A Bundle entry id does not match its URL.", entry.index, "bundle_id"
        )
    check_resource_identifiers(resource, settings.validation)


def _decide(
    entry: _Entry,
    raw: dict[str, Any],
    *,
    principal: Principal,
    grants: Grants,
    request: CanonicalRequest,
    settings: Settings,
) -> Decision:
    interaction = match_interaction(entry.method, entry.path)
    if interaction.name in _NOT_IN_BUNDLES or interaction.is_operation:
        raise _invalid(
            "This interaction is not allowed in a Bundle.",
            entry.index,
            "bundle_interaction",
        )
    _check_resource(entry, interaction, settings)
    query = entry.query
    if interaction.is_search:
        query = check_search(query, settings.validation)
    standalone = replace(request, method=entry.method, path=entry.path, query=query)
    apply_policy(
        principal,
        grants,
        standalone,
        interaction,
        settings.authorise,
        allow_list=settings.validation.identifier_allow_list,
    )
    decision = authorise(
        grants, interaction, standalone, settings.authorise, patient=principal.patient
    )
    if decision.confined and interaction.name == "create":
        check_in_compartment(entry.resource, decision.patient or "")
    if decision.rules:
        _check_rules(entry, interaction, decision)
    condition = raw["request"].get("ifNoneExist")
    if condition is not None:
        _conditional(
            condition,
            entry,
            interaction=interaction,
            decision=decision,
            grants=grants,
            settings=settings,
        )
    return decision


def _check_rules(entry: _Entry, interaction: Interaction, decision: Decision) -> None:
    """A tag-constrained scope: creates must carry the tag; reads in a Bundle
    would need a per-entry reply check, so they are refused."""
    if interaction.name != "create" or not satisfies_rules(
        entry.resource, decision.rules
    ):
        raise InsufficientScope(
            "The access token does not permit this request.", detail="scope_content"
        )


def _conditional(
    condition: Any,
    entry: _Entry,
    *,
    interaction: Interaction,
    decision: Decision,
    grants: Grants,
    settings: Settings,
) -> None:
    """A conditional create searches first, so it needs search scope too."""
    if decision.confined or interaction.name != "create":
        raise Forbidden("The request is not permitted.", detail="bundle_conditional")
    if not isinstance(condition, str) or not condition.isascii():
        raise _invalid("ifNoneExist must be a query.", entry.index, "bundle_request")
    limit = settings.gateway.max_uri_bytes
    query = parse_query(condition.encode("ascii"), max_bytes=limit)
    probe = CanonicalRequest(
        method="GET",
        path=entry.path,
        query=check_search(query, settings.validation),
        headers={},
        client_address="-",
        correlation_id="-",
    )
    authorise(grants, match_interaction("GET", entry.path), probe, settings.authorise)


def authorise_bundle(
    body: bytes,
    principal: Principal,
    grants: Grants,
    request: CanonicalRequest,
    settings: Settings,
) -> BundleDecision:
    """Authorise every entry; return the re-serialised Bundle and confinement."""
    bundle, entries = _parse(body, settings)
    patient = None
    for index, raw in enumerate(entries):
        entry = _entry(raw, index, settings)
        try:
            decision = _decide(
                entry,
                raw,
                principal=principal,
                grants=grants,
                request=request,
                settings=settings,
            )
        except Refusal as refusal:
            refusal.detail = f"bundle_entry_{refusal.detail}"
            raise
        patient = decision.patient or patient
        if decision.request.query != entry.query:
            url = entry.path.lstrip("/") + "?" + encode_query(decision.request.query)
            raw["request"]["url"] = url
    text = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
    return BundleDecision(text.encode("utf-8"), patient)
