"""A licence report of the installed distributions, from their own metadata.

The licence is the ``License-Expression`` field (PEP 639) where present,
else the ``License`` field when it is a short name, else the ``License ::``
classifiers. A distribution with none of these is reported as unknown, so
a reviewer sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from packaging.utils import canonicalize_name

__all__ = ["LicenceEntry", "licence_report"]

_UNKNOWN = "UNKNOWN"
_SHORT = 80


@dataclass(frozen=True, slots=True)
class LicenceEntry:
    name: str
    version: str
    licence: str


def _field(meta: metadata.PackageMetadata, name: str) -> str | None:
    values = meta.get_all(name)
    return str(values[0]) if values else None


def _licence(meta: metadata.PackageMetadata) -> str:
    expression = _field(meta, "License-Expression")
    if expression:
        return expression
    text = _field(meta, "License")
    if text and len(text) <= _SHORT and "\n" not in text and text != _UNKNOWN:
        return text
    classifiers = [
        value.split("::")[-1].strip()
        for value in meta.get_all("Classifier") or []
        if value.startswith("License ::")
    ]
    return " OR ".join(classifiers) if classifiers else _UNKNOWN


#: Opening words of common licence texts, for distributions that only ship
#: a ``License-File``.
_TEXTS = (
    ("Apache License", "Apache-2.0"),
    ("Permission is hereby granted, free of charge", "MIT"),
    ("Redistribution and use in source and binary forms", "BSD"),
    ("Mozilla Public License", "MPL-2.0"),
)


def _from_licence_file(dist: metadata.Distribution) -> str | None:
    for name in dist.metadata.get_all("License-File") or []:
        text = dist.read_text(f"licenses/{name}") or dist.read_text(name) or ""
        for opening, licence in _TEXTS:
            if opening in text[:2000]:
                return f"{licence} (from {name})"
    return None


def _entry(dist: metadata.Distribution) -> LicenceEntry:
    licence = _licence(dist.metadata)
    if licence == _UNKNOWN:
        licence = _from_licence_file(dist) or _UNKNOWN
    return LicenceEntry(canonicalize_name(dist.metadata["Name"]), dist.version, licence)


def licence_report(
    distributions: Iterable[metadata.Distribution] | None = None,
) -> list[LicenceEntry]:
    """One entry per installed distribution, sorted by name."""
    found = distributions if distributions is not None else metadata.distributions()
    entries = {
        canonicalize_name(dist.metadata["Name"]): _entry(dist)
        for dist in found
        if dist.metadata["Name"]
    }
    return [entries[name] for name in sorted(entries)]
