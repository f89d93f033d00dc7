"""Cost of sealing patient-identifying fields at rest, beside plain JSON.

Run: ``.venv/bin/python bench/at_rest_bench.py [--rounds N]``. In this
process, no network, no database: the reference API's ``split`` (seal the
protected fields) and ``join`` (open them) on a typical Patient, beside the
anchor of ``json.dumps`` plus ``json.loads`` of the same resource, which is
what storing and reading a row costs without protection. Reported in µs per
resource and as a ratio to the anchor; also the blind-index HMAC per value.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kaitiaki.iam.keyring import KeyRing
from kaitiaki.refapi.protect import FieldProtector

PATIENT = {
    "resourceType": "Patient",
    "id": "pat-1",
    "meta": {"versionId": "1", "lastUpdated": "2026-12-04T00:00:00.000Z"},
    "identifier": [
        {"system": "https://standards.digital.health.nz/ns/nhi-id", "value": "ZZZ0016"}
    ],
    "name": [{"family": "Wharepapa", "given": ["Hinemoa", "Aroha"]}],
    "gender": "female",
    "birthDate": "1987-03-14",
    "telecom": [{"system": "phone", "value": "021-555-0199"}],
    "address": [{"line": ["12 Tītī Street"], "city": "Ōtautahi", "postalCode": "8011"}],
}


def _per_call(work: Callable[[], object], rounds: int, budget: float) -> float:
    started = time.perf_counter()
    done = 0
    while done < rounds and time.perf_counter() - started < budget:
        work()
        done += 1
    return (time.perf_counter() - started) / max(done, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        keys = Path(scratch)
        protector = FieldProtector(
            KeyRing.in_store("refapi-data", keys),
            KeyRing.in_store("identifier-hmac", keys),
        )
        clear, sealed = protector.split("Patient", PATIENT)

        def anchor() -> object:
            return json.loads(json.dumps(PATIENT, ensure_ascii=False))

        def protected() -> object:
            row, box = protector.split("Patient", PATIENT)
            return protector.join("Patient", json.loads(json.dumps(row)), box)

        base = _per_call(anchor, args.rounds, args.seconds)
        cost = _per_call(protected, args.rounds, args.seconds)
        index = _per_call(
            lambda: protector.index_value("ZZZ0016"), args.rounds, args.seconds
        )
    print("| measure | µs per resource | ratio to anchor |")
    print("|---|---|---|")
    print(f"| anchor: json dumps + loads | {base:.1f} | 1.0 |")
    print(f"| seal + open + json | {cost:.1f} | {cost / base:.1f} |")
    print(f"| blind index (one identifier) | {index:.1f} | {index / base:.2f} |")
    print(
        f"(sealed size {len(sealed or '')} bytes, clear part {len(json.dumps(clear))})"
    )


if __name__ == "__main__":
    main()
