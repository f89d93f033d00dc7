"""Authorisation cost per request, beside parsing the same reply with json.

Run: ``.venv/bin/python bench/authorise_bench.py [--rounds N]``. Pure core, in
this process: scope parsing and the decision for a few typical requests, and
the egress check of a 20-entry searchset under ``patient/`` scopes. The
anchor is ``json.loads`` of that Bundle, measured in the same run, since the
egress check has to parse the reply at least once.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from kaitiaki.controls.authorise import authorise
from kaitiaki.controls.compartment import filter_reply
from kaitiaki.fhir.interactions import match_interaction
from kaitiaki.fhir.scopes import parse_scopes
from kaitiaki.request import CanonicalRequest, parse_query
from kaitiaki.settings import AuthoriseSettings

SETTINGS = AuthoriseSettings()
CASES = (
    ("system read", "system/*.rs", "GET", "/Patient/pat-1", ""),
    ("system search + include", "system/*.rs", "GET", "/Observation",
     "patient=pat-1&_include=Observation:subject:Patient&_count=20"),
    ("patient search, pinned", "patient/*.rs", "GET", "/Observation",
     "code=1234-5&category=laboratory"),
    ("patient search, 3 values", "patient/*.rs", "GET", "/Observation",
     "subject=Patient/pat-1,pat-1&patient=pat-1"),
)  # fmt: skip


def _per_call(function: Callable[[], object], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        function()
    return (time.perf_counter() - started) / rounds * 1e6


def _decision(scope: str, method: str, path: str, query: str) -> Callable[[], object]:
    interaction = match_interaction(method, path)
    request = CanonicalRequest(
        method=method,
        path="/fhir" + path,
        query=parse_query(query.encode(), max_bytes=4096),
        headers={},
        client_address="127.0.0.1",
        correlation_id="c",
    )

    def run() -> object:
        grants = parse_scopes(scope)
        return authorise(grants, interaction, request, SETTINGS, patient="pat-1")

    return run


def _bundle() -> bytes:
    entries = [
        {
            "fullUrl": f"https://gw.example/fhir/Observation/obs-{index}",
            "resource": {
                "resourceType": "Observation",
                "id": f"obs-{index}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
                "subject": {"reference": "Patient/pat-1"},
                "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
            },
            "search": {"mode": "match"},
        }
        for index in range(20)
    ]
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return json.dumps(bundle).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5000)
    rounds = min(parser.parse_args().rounds, 100_000)

    print("| case | µs per request |")
    print("|---|---|")
    for name, *case in CASES:
        print(f"| {name} | {_per_call(_decision(*case), rounds):.1f} |")

    body = _bundle()
    anchor = _per_call(lambda: json.loads(body), rounds)
    egress = _per_call(lambda: filter_reply(body, "pat-1", single=False), rounds)
    print()
    print("| reply check (20 entries) | µs | ratio to json.loads |")
    print("|---|---|---|")
    print(f"| json.loads (anchor) | {anchor:.1f} | 1.0 |")
    print(f"| egress check | {egress:.1f} | {egress / anchor:.1f} |")


if __name__ == "__main__":
    main()
