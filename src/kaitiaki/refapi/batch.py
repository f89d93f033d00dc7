"""Batch and transaction Bundles for the reference API (``POST [base]``).

A batch runs each entry in its own database transaction and answers each
with its own status. A transaction runs every entry in one SQLAlchemy
transaction: the first failing entry rolls all of them back and the whole
request is refused. Entries may read, search, create, update and delete;
``urn:uuid:`` references to resources created in the same transaction are
rewritten to the ids the server assigns.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from kaitiaki.errors import BadRequest, NotFound, Refusal
from kaitiaki.refapi.bodies import check_shape
from kaitiaki.refapi.resources import check_id, check_type
from kaitiaki.refapi.search import parse_search
from kaitiaki.refapi.store import ResourceStore, StoreTransaction

__all__ = ["MAX_ENTRIES", "run_bundle", "searchset"]

MAX_ENTRIES = 100
_REASONS = {200: "OK", 201: "Created", 204: "No Content"}


def searchset(
    base: str,
    resource_type: str,
    params: list[tuple[str, str]],
    total: int,
    resources: list[dict[str, Any]],
) -> dict[str, Any]:
    """A searchset Bundle whose links name ``base``."""
    self_url = f"{base}/{resource_type}"
    if params:
        self_url += "?" + urlencode(params)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base}/{resource_type}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }


def _target(entry: Any, index: int) -> tuple[str, list[str], str]:
    request = entry.get("request") if isinstance(entry, dict) else None
    method = request.get("method") if isinstance(request, dict) else None
    url = request.get("url") if isinstance(request, dict) else None
    if not isinstance(method, str) or not isinstance(url, str):
        raise BadRequest(
            "A Bundle entry has no request.", expression=f"Bundle.entry[{index}]"
        )
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme or not 1 <= len(segments) <= 2:
        raise BadRequest(
            "A Bundle entry URL is not supported.",
            expression=f"Bundle.entry[{index}].request.url",
        )
    return method, segments, parts.query


def _resource(entry: dict[str, Any], resource_type: str) -> dict[str, Any]:
    resource = entry.get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise BadRequest("The entry's resource does not match its URL.")
    check_shape(resource, resource_type)
    return resource


def _response(
    status: int, resource: dict[str, Any] | None = None, base: str = ""
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "status": f"{status} {_REASONS.get(status, '')}".strip()
    }
    entry: dict[str, Any] = {"response": response}
    if resource is not None:
        entry["resource"] = resource
        if status == 201:
            response["location"] = (
                f"{base}/{resource['resourceType']}/{resource['id']}"
                f"/_history/{resource['meta']['versionId']}"
            )
    return entry


def _read_or_search(
    conn: StoreTransaction, segments: list[str], query: str, base: str
) -> dict[str, Any]:
    resource_type = check_type(segments[0])
    if len(segments) == 2:
        found = conn.read(resource_type, check_id(segments[1]))
        if found is None:
            raise NotFound("The resource was not found.")
        return _response(200, found)
    params = parse_qsl(query, keep_blank_values=True)
    total, resources = conn.search(parse_search(resource_type, params))
    return _response(200, searchset(base, resource_type, params, total, resources))


def _write(
    conn: StoreTransaction,
    entry: dict[str, Any],
    method: str,
    segments: list[str],
    context: tuple[str, str],
) -> dict[str, Any]:
    now, base = context
    resource_type = check_type(segments[0])
    if method == "DELETE" and len(segments) == 2:
        conn.delete(resource_type, check_id(segments[1]))
        return _response(204)
    resource = _resource(entry, resource_type)
    if method == "POST" and len(segments) == 1:
        content = {k: v for k, v in resource.items() if k != "id"}
        assigned = entry.get("_assigned") or str(uuid.uuid4())
        stored, _ = conn.write(resource_type, {**content, "id": assigned}, now)
        return _response(201, stored, base)
    if method == "PUT" and len(segments) == 2:
        if resource.get("id") != check_id(segments[1]):
            raise BadRequest("The body's id must equal the id in the URL.")
        stored, created = conn.write(resource_type, resource, now)
        return _response(201 if created else 200, stored, base)
    raise BadRequest("This Bundle entry is not supported.")


def _run_entry(
    conn: StoreTransaction, entry: Any, index: int, context: tuple[str, str]
) -> dict[str, Any]:
    method, segments, query = _target(entry, index)
    if method == "GET":
        return _read_or_search(conn, segments, query, context[1])
    return _write(conn, entry, method, segments, context)


def _replace_references(node: Any, assigned: dict[str, str]) -> Any:
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and reference in assigned:
            node = {**node, "reference": assigned[reference]}
        return {
            key: _replace_references(value, assigned) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_replace_references(item, assigned) for item in node]
    return node


def _assign_ids(entries: list[Any]) -> list[Any]:
    """Give each created resource its id now, so references can point at it."""
    assigned: dict[str, str] = {}
    prepared = []
    for entry in entries:
        if not isinstance(entry, dict):
            prepared.append(entry)
            continue
        resource = entry.get("resource")
        full_url = entry.get("fullUrl")
        new_id = str(uuid.uuid4())
        is_urn = isinstance(full_url, str) and full_url.startswith("urn:uuid:")
        if is_urn and isinstance(resource, dict) and "resourceType" in resource:
            assigned[str(full_url)] = f"{resource['resourceType']}/{new_id}"
        prepared.append({**entry, "_assigned": new_id})
    return [_replace_references(entry, assigned) for entry in prepared]


def _outcome_entry(refusal: Refusal) -> dict[str, Any]:
    issue = {
        "severity": "error",
        "code": refusal.issue_code,
        "details": {"text": refusal.message},
    }
    return {
        "response": {
            "status": str(refusal.status),
            "outcome": {"resourceType": "OperationOutcome", "issue": [issue]},
        }
    }


def run_bundle(
    store: ResourceStore, bundle: dict[str, Any], now: str, base: str
) -> dict[str, Any]:
    """Run a batch or transaction Bundle; a failing transaction raises."""
    kind = bundle.get("type")
    entries = bundle.get("entry", [])
    if kind not in ("batch", "transaction") or not isinstance(entries, list):
        raise BadRequest("The Bundle must be a batch or a transaction.")
    if len(entries) > MAX_ENTRIES:
        raise BadRequest("The Bundle has too many entries.", expression="Bundle.entry")
    context = (now, base)
    responses: list[dict[str, Any]] = []
    if kind == "transaction":
        with store.begin() as conn:
            for index, entry in enumerate(_assign_ids(entries)):
                responses.append(_run_entry(conn, entry, index, context))
    else:
        for index, entry in enumerate(entries):
            try:
                with store.begin() as conn:
                    responses.append(_run_entry(conn, entry, index, context))
            except Refusal as refusal:
                responses.append(_outcome_entry(refusal))
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": f"{kind}-response",
        "entry": responses,
    }
