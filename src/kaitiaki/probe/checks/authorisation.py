"""Requirement 1, authorisation: a valid token without the needed scope is
refused with 403 on every interaction and on every type a search reaches."""

from __future__ import annotations

import json
from collections.abc import Callable

from kaitiaki.errors import ProbeError
from kaitiaki.probe.checks.common import fail, not_applicable, passed, status_outcome
from kaitiaki.probe.http import Sent
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import FHIR_JSON, Target

__all__ = ["CHECKS"]

AUTHZ = ("HNZAS_MUST_USE_APPROPRIATE_AUTHORISATION",)
METHODS = ("HNZAS_SHOULD_VALIDATE_METHODS_FOR_SESSION_TOKEN",)
FIX_SCOPE = (
    "Authorise every request against the token's scopes before it reaches the "
    "API: the interaction's own type and letters (c, r, u, d, s), and every type "
    "a search reaches through _include, _revinclude, _has, chains and batch "
    'entries; answer 403 with error="insufficient_scope".'
)
PROBE_ID = "kaitiaki-probe-missing"


def _resource(resource_type: str) -> bytes:
    return json.dumps({"resourceType": resource_type, "active": True}).encode()


def _write_without_scope(method: str) -> Callable[[Target], Outcome]:
    def run(target: Target) -> Outcome:
        kind = target.read_type
        path = kind if method == "POST" else f"{kind}/{PROBE_ID}"
        body = None if method == "DELETE" else _resource(kind)
        if body is not None and method == "PUT":
            body = json.dumps({"resourceType": kind, "id": PROBE_ID}).encode()
        headers = {"Content-Type": FHIR_JSON} if body is not None else {}
        sent = target.request(method, path, headers=headers, body=body)
        return status_outcome(
            [sent], {403}, f"{method} with a read-only token", need_outcome=False
        )

    return run


def narrow_token(target: Target) -> str | None:
    """A token limited to the read type, or None when none can be had."""
    scope = f"system/{target.read_type}.rs"
    try:
        if target.tokens.has("narrow"):
            return target.token("narrow")
        return target.token("reader", scope)
    except ProbeError:
        return None


def _no_other_type(target: Target, sent: Sent) -> bool:
    data = sent.json()
    entries = data.get("entry") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if (
            isinstance(resource, dict)
            and resource.get("resourceType") == target.other_type
        ):
            return False
    return True


def _reach(
    make_path: Callable[[Target], str], what: str
) -> Callable[[Target], Outcome]:
    def run(target: Target) -> Outcome:
        token = narrow_token(target)
        if token is None:
            return not_applicable(
                "the token endpoint would not issue a token limited to "
                f"system/{target.read_type}.rs (set clients.narrow in the profile)"
            )
        sent = target.request("GET", make_path(target), token=token)
        if sent.status == 403:
            return passed(f"{what} outside the token's scope: refused with 403", sent)
        if 200 <= sent.status < 300 and _no_other_type(target, sent):
            return passed(f"{what}: served without out-of-scope resources", sent)
        if 200 <= sent.status < 300:
            return fail(
                f"{what}: out-of-scope {target.other_type} resources returned", sent
            )
        return fail(f"{what}: answered HTTP {sent.status}, expected 403", sent)

    return run


def _other_type(target: Target) -> Outcome:
    token = narrow_token(target)
    if token is None:
        return not_applicable("no narrowly-scoped token could be had")
    sent = target.request("GET", f"{target.other_type}?_count=1", token=token)
    return status_outcome([sent], {403}, f"search of {target.other_type} without scope")


def _batch(target: Target) -> Outcome:
    token = narrow_token(target)
    if token is None:
        return not_applicable("no narrowly-scoped token could be had")
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"{target.other_type}?_count=1"}}
        ],
    }
    sent = target.request(
        "POST",
        "",
        token=token,
        headers={"Content-Type": FHIR_JSON},
        body=json.dumps(bundle).encode(),
    )
    if 400 <= sent.status < 500:
        return passed(
            f"a batch reaching {target.other_type} was refused (HTTP {sent.status})",
            sent,
        )
    data = sent.json()
    entries = data.get("entry") if isinstance(data, dict) else None
    statuses = [
        str((e.get("response") or {}).get("status", ""))
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict)
    ]
    if sent.status == 200 and statuses and all(s.startswith("403") for s in statuses):
        return passed("every batch entry outside the scope was answered 403", sent)
    return fail(
        f"a batch entry outside the scope was not refused (HTTP {sent.status})", sent
    )


def _check(
    check_id: str,
    title: str,
    run: Callable[[Target], Outcome],
    *,
    needs: frozenset[str] = frozenset(),
    hnzas: tuple[str, ...] = AUTHZ,
    severity: Severity = Severity.CRITICAL,
) -> Check:
    return Check(check_id, title, 1, hnzas, severity, FIX_SCOPE, run, needs)


CHECKS: tuple[Check, ...] = (
    _check(
        "authz.create-without-scope",
        "Create with a read-only token is refused with 403",
        _write_without_scope("POST"),
        needs=frozenset({"writes"}),
        hnzas=(*AUTHZ, *METHODS),
    ),
    _check(
        "authz.update-without-scope",
        "Update with a read-only token is refused with 403",
        _write_without_scope("PUT"),
        needs=frozenset({"destructive"}),
        hnzas=(*AUTHZ, *METHODS),
    ),
    _check(
        "authz.delete-without-scope",
        "Delete with a read-only token is refused with 403",
        _write_without_scope("DELETE"),
        needs=frozenset({"destructive"}),
        hnzas=(*AUTHZ, *METHODS),
    ),
    _check(
        "authz.other-type",
        "A search of a type outside the token's scope is refused with 403",
        _other_type,
    ),
    _check(
        "authz.revinclude",
        "_revinclude of a type outside the token's scope is refused",
        _reach(
            lambda t: f"{t.read_type}?_revinclude={t.other_type}:subject", "_revinclude"
        ),
    ),
    _check(
        "authz.include",
        "_include of a type outside the token's scope is refused",
        _reach(lambda t: f"{t.read_type}?_include={t.read_type}:*", "_include=*"),
    ),
    _check(
        "authz.has",
        "_has of a type outside the token's scope is refused",
        _reach(
            lambda t: f"{t.read_type}?_has:{t.other_type}:subject:status=final", "_has"
        ),
    ),
    _check(
        "authz.batch",
        "Batch entries outside the token's scope are refused",
        _batch,
    ),
)
