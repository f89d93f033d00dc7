"""Refresh the corpus samples that ``make test`` replays (tests/waf/data/).

Run: ``.venv/bin/python bench/waf_sample.py``. Takes every n-th CRS attack
test that the traffic filter itself blocks (up to 12 per category, so a
regression in any category shows) and every n-th FHIR benign request, and
writes them as JSON with the bearer token left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from waf_corpus import CRS, Wire, crs_cases, fhir_requests, for_kaitiaki

from kaitiaki.errors import Refusal
from kaitiaki.fhir.interactions import match_interaction
from kaitiaki.request import CanonicalRequest, canonical_path, parse_query
from kaitiaki.settings import WafSettings
from kaitiaki.strictjson import loads_strict
from kaitiaki.waf import Findings, TrafficFilter

OUT = Path(__file__).resolve().parents[1] / "tests" / "waf" / "data"
WAF = TrafficFilter(WafSettings())


def _blocked(wire: Wire) -> bool:
    headers: dict[str, list[str]] = {}
    for name, value in wire.headers:
        headers.setdefault(name.lower(), []).append(value)
    try:
        path, _, raw_query = wire.target.partition("?")
        request = CanonicalRequest(
            wire.method,
            canonical_path(path.encode(), max_bytes=4096),
            parse_query(raw_query.encode(), max_bytes=4096),
            headers,
            "192.0.2.1",
            "sample",
        )
        match_interaction(wire.method, request.path.removeprefix("/fhir"))
        findings = Findings()
        WAF.inspect_head(request, "", findings)
        if wire.body and "json" in headers.get("content-type", [""])[0]:
            WAF.inspect_resource(loads_strict(wire.body), "", request.path, findings)
        elif wire.body:
            form = parse_query(wire.body, max_bytes=1 << 20)
            WAF.inspect_query(form, "", request.path, findings)
    except Refusal:
        return False
    return findings.score >= 5 and "cookie" not in headers


def _record(wire: Wire) -> dict[str, object]:
    return {
        "method": wire.method,
        "target": wire.target,
        "headers": [
            [n, v]
            for n, v in wire.headers
            if n.lower() not in ("authorization", "host")
        ],
        "body": wire.body.decode("utf-8", "surrogateescape"),
    }


def main() -> None:
    per_category: dict[str, list[dict[str, object]]] = {}
    for index, case in enumerate(crs_cases()):
        mapped = for_kaitiaki(case, "-")
        chosen = per_category.setdefault(case.category, [])
        if not case.attack or mapped.not_applicable or len(chosen) >= 12:
            continue
        if index % 3 == 0 and _blocked(mapped.wire):
            chosen.append({"case": case.name, **_record(mapped.wire)})
    attacks = [item for items in per_category.values() for item in items]
    benign = [_record(wire) for wire in fhir_requests("-")[::12]]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crs-attacks.json").write_text(json.dumps(attacks, indent=1) + "\n")
    (OUT / "fhir-benign.json").write_text(json.dumps(benign, indent=1) + "\n")
    print(f"{len(attacks)} attacks, {len(benign)} benign requests from {CRS.parent}")


if __name__ == "__main__":
    main()
