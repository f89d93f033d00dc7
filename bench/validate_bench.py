"""Validation cost for a 1 KB Patient, a 100 KB Bundle and the canonicaliser,
beside orjson's parse time of the same bytes (the anchor, same run).

Run: ``.venv/bin/python bench/validate_bench.py [--rounds N]``. Everything is
in process. Reported in µs per item: orjson parse, Kaitiaki's strict parse
(duplicates, NaN, BOM, depth and size limits), FHIR R4 structure validation
of the parsed resource (jsonschema-rs, every embedded resource), NZ
identifier checks, and the ratio of the whole to orjson. The canonicaliser
row times path rule, query parse, header collection, framing and Host
checks for one request with a typical FHIR search.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from kaitiaki.controls.identifiers import check_resource_identifiers
from kaitiaki.fhir.search import SearchDefinitions
from kaitiaki.fhir.structure import FhirDefinitions
from kaitiaki.request import (
    canonical_path,
    check_framing,
    check_host,
    collect_headers,
    parse_query,
)
from kaitiaki.settings import ValidationSettings
from kaitiaki.strictjson import JsonLimits, loads_strict

CORPUS = Path(__file__).resolve().parents[2] / "shared/data/fhir-nz-examples"


def _per_call(work: Callable[[], Any], rounds: int) -> float:
    for _ in range(min(rounds, 50)):
        work()
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - started) / rounds * 1e6


def patient_1k() -> bytes:
    # The NZ Base NHI example (placeholder NHIs replaced by valid test NHIs),
    # padded with names to about 1 KB.
    raw = (CORPUS / "HL7NZ-nzbase/Patient-patient-nhi.json").read_bytes()
    resource = json.loads(raw)
    nhis = ("ZJM9397", "ZAA0792", "ZKC4633", "ZAC5361", "ZZZ0008", "ZZZ0016")
    for identifier, nhi in zip(resource["identifier"], nhis, strict=False):
        identifier["value"] = nhi
    while len(json.dumps(resource)) < 1000:
        resource.setdefault("name", []).append({"family": "Matariki", "given": ["J"]})
    return json.dumps(resource).encode()


def bundle_100k() -> bytes:
    entries = []
    for path in sorted(CORPUS.glob("*/*.json")):
        resource = json.loads(path.read_bytes())
        if path.parent.name == "HL7NZ-hpi" and len(path.read_bytes()) < 4000:
            entries.append({"resource": resource})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [],
    }
    while len(json.dumps(bundle)) < 100_000:
        bundle["entry"].append(
            copy.deepcopy(entries[len(bundle["entry"]) % len(entries)])
        )
    return json.dumps(bundle).encode()


def bench_body(
    name: str, raw: bytes, rounds: int, definitions: FhirDefinitions
) -> None:
    limits = JsonLimits()
    settings = ValidationSettings()
    parsed = loads_strict(raw, limits=limits)
    anchor = _per_call(lambda: orjson.loads(raw), rounds)
    strict = _per_call(lambda: loads_strict(raw, limits=limits), rounds)
    structure = _per_call(lambda: definitions.check(parsed), rounds)
    nz = _per_call(lambda: check_resource_identifiers(parsed, settings), rounds)
    total = strict + structure + nz
    print(
        f"| {name} ({len(raw) / 1024:.1f} KiB) | {anchor:.1f} | {strict:.1f} "
        f"| {structure:.1f} | {nz:.1f} | {total:.1f} | {total / anchor:.1f} |"
    )


def bench_canonical(rounds: int, search: SearchDefinitions, anchor_raw: bytes) -> None:
    raw_path = b"/fhir/Observation"
    raw_query = (
        b"patient=Patient/ZJM9397&code=http://loinc.org|8480-6,http://loinc.org|8462-4"
        b"&date=ge2024-06-01&_count=50&_sort=-date"
    )
    raw_headers = [
        (b"host", b"api.example.health.nz"),
        (b"accept", b"application/fhir+json"),
        (b"authorization", b"Bearer " + b"a" * 600),
        (b"x-correlation-id", b"3a6cc822-fe20-4dac-9dee-6cfd0c39ca94"),
        (b"user-agent", b"pms/1.0"),
    ]
    allowed = frozenset({"api.example.health.nz"})

    def canonicalise() -> None:
        headers = collect_headers(raw_headers, max_count=64, max_bytes=16384)
        check_framing(headers)
        check_host(headers, allowed)
        canonical_path(raw_path, max_bytes=4096)
        parse_query(raw_query, max_bytes=4096)

    query = parse_query(raw_query, max_bytes=4096)
    anchor = _per_call(
        lambda: orjson.loads(raw_query.replace(b"&", b" ").hex().join('""').encode()),
        rounds,
    )
    edge = _per_call(canonicalise, rounds)
    params = _per_call(lambda: search.check("Observation", query), rounds)
    for label, cost in (
        ("canonicaliser (one search request)", edge),
        ("search parameters (5)", params),
    ):
        print(
            f"| {label} | {anchor:.1f} | {cost:.1f} | - | - | {cost:.1f} "
            f"| {cost / anchor:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    started = time.perf_counter()
    definitions = FhirDefinitions.load_r4()
    search = SearchDefinitions.load_r4({})
    print(f"definitions loaded in {(time.perf_counter() - started) * 1000:.0f} ms")
    print(
        "| item | orjson parse µs | strict parse µs | structure µs | NZ ids µs "
        "| Kaitiaki total µs | total / orjson |"
    )
    print("|---|---|---|---|---|---|---|")
    patient = patient_1k()
    bench_body("Patient", patient, rounds, definitions)
    bench_body("Bundle", bundle_100k(), max(rounds // 50, 20), definitions)
    bench_canonical(rounds, search, patient)


if __name__ == "__main__":
    main()
