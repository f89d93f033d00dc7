"""Read the Python components of a CycloneDX JSON SBOM, for ``deps audit``.

Components are taken from their package URL (``pkg:pypi/name@version``);
components of other ecosystems, and nested components, are listed by purl
too, but only PyPI ones are audited against the PyPI advisory snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from packaging.utils import canonicalize_name

from kaitiaki.deps.lockfile import LockedRequirement
from kaitiaki.errors import ConfigError

__all__ = ["read_sbom"]


def _components(items: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, dict):
            yield item
            yield from _components(item.get("components"))


def _pypi_pin(component: dict[str, Any]) -> tuple[str, str] | None:
    purl = component.get("purl")
    if not isinstance(purl, str) or not purl.startswith("pkg:pypi/"):
        return None
    body = purl[len("pkg:pypi/") :].split("?", 1)[0].split("#", 1)[0]
    name, at, version = body.partition("@")
    if not at or not name or not version:
        return None
    return canonicalize_name(unquote(name)), unquote(version)


def read_sbom(path: Path) -> list[LockedRequirement]:
    """The PyPI components of a CycloneDX JSON SBOM, as pinned requirements."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read SBOM {path}: not CycloneDX JSON") from exc
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise ConfigError(f"{path}: not a CycloneDX SBOM (bomFormat is missing)")
    pins = {
        pin
        for component in _components(document.get("components"))
        if (pin := _pypi_pin(component)) is not None
    }
    return [
        LockedRequirement(name=name, version=version, hashes=frozenset())
        for name, version in sorted(pins)
    ]
