"""Markdown for the WAF benchmark results, and its section of benchmarks.md."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

START = "<!-- waf-bench:start -->"
END = "<!-- waf-bench:end -->"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _detection(rows: dict[str, Any]) -> list[str]:
    lines = [
        "| category | attacks | applicable | ModSecurity blocked | "
        "Kaitiaki blocked | traffic filter 403 (of all attacks) |",
        "|---|---|---|---|---|---|",
    ]
    for key in sorted(rows):
        category, kind = key.split("|")
        if kind != "attack":
            continue
        row = rows[key]
        applicable = row["total"] - row["not_applicable"]
        modsec = row["modsec_blocked"] - row["na_modsec_blocked"]
        kaitiaki = row["kaitiaki_blocked"] - row["na_kaitiaki_blocked"]
        lines.append(
            f"| {category} | {row['total']} | {applicable} | "
            f"{_pct(modsec, applicable)} | {_pct(kaitiaki, applicable)} | "
            f"{_pct(row['kaitiaki_waf'], row['total'])} |"
        )
    return lines


def _crs_benign(rows: dict[str, Any]) -> list[str]:
    lines = [
        "| category | CRS benign checks | ModSecurity refused | Kaitiaki refused |",
        "|---|---|---|---|",
    ]
    for key in sorted(rows):
        category, kind = key.split("|")
        if kind == "benign":
            row = rows[key]
            lines.append(
                f"| {category} | {row['total']} | "
                f"{_pct(row['modsec_blocked'], row['total'])} | "
                f"{_pct(row['kaitiaki_blocked'], row['total'])} |"
            )
    return lines


def _not_applicable(reasons: dict[str, Any]) -> list[str]:
    lines = ["| category | tests | reason |", "|---|---|---|"]
    for category in sorted(reasons):
        for reason, count in sorted(reasons[category].items()):
            lines.append(f"| {category} | {count} | {reason} |")
    return lines


def _load(load: dict[str, Any]) -> list[str]:
    if not load:
        return ["(not measured in this run)"]
    modsec, kaitiaki = load["modsec"], load["kaitiaki"]
    ratio = kaitiaki["rps"] / modsec["rps"] if modsec["rps"] else 0.0
    return [
        "| gateway | requests/s | CPU µs per request | requests | non-2xx |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {row['rps']:.0f} | {row['cpu_us']:.0f} | "
            f"{row['requests']} | {row['non_2xx']} |"
            for name, row in (
                ("nginx + ModSecurity + CRS", modsec),
                ("Kaitiaki", kaitiaki),
            )
        ),
        "",
        f"Kaitiaki / ModSecurity requests/s: **{ratio:.2f} x** (target: 3 x).",
    ]


def render(results: dict[str, Any]) -> str:
    crs, fhir, load = results["crs"], results["fhir"], results["load"]
    counts = fhir["counts"]
    statuses = {
        name: ", ".join(f"{s}: {n}" for s, n in sorted(c.items()))
        for name, c in fhir["statuses"].items()
    }
    today = datetime.date.today().isoformat()
    parts = [
        f"One run on the 2-core development machine, {today}, shared with other work.",
        "",
        "Detection (attack tests of the CRS regression corpus; blocked = the "
        "upstream never saw it; applicable = replayable as FHIR traffic):",
        "",
        *_detection(crs["rows"]),
        "",
        "Not applicable to a JSON/FHIR API (still sent; not in the rates above):",
        "",
        *_not_applicable(crs["not_applicable"]),
        "",
        "CRS's own benign checks (`no_expect_ids` tests; any refusal counted):",
        "",
        *_crs_benign(crs["rows"]),
        "",
        f"False positives on {counts['total']} valid FHIR requests built from "
        "the NZ example corpus (blocked with 403):",
        "",
        "| gateway | blocked | rate | all statuses |",
        "|---|---|---|---|",
        f"| nginx + ModSecurity + CRS | {counts['modsec_blocked']} | "
        f"{_pct(counts['modsec_blocked'], counts['total'])} | {statuses['modsec']} |",
        f"| Kaitiaki | {counts['kaitiaki_blocked']} | "
        f"{_pct(counts['kaitiaki_blocked'], counts['total'])} | "
        f"{statuses['kaitiaki']} |",
        "",
        "Throughput, same upstream, same bounded wrk load (2 threads, 32 "
        "connections), `GET` search with a bearer token:",
        "",
        *_load(load),
    ]
    return "\n".join(parts)


def write_section(path: Path, text: str) -> None:
    doc = path.read_text("utf-8")
    block = f"{START}\n{text}\n{END}"
    if START in doc:
        doc = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S
        )
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc, "utf-8")
