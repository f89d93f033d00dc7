"""Read pinned requirements: hash-pinned locks and plain ``name==version`` lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

from kaitiaki.errors import ConfigError

__all__ = ["LockedRequirement", "read_lock"]

_PIN = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(?P<version>[^\s;\\]+)"
    r"\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class LockedRequirement:
    name: str
    version: str
    hashes: frozenset[str]
    marker: str | None = None

    def applies(self) -> bool:
        """True when the environment marker (if any) holds here."""
        return self.marker is None or Marker(self.marker).evaluate()


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        current += " " + line if current else line
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    if current:
        lines.append(current)
    return lines


def read_lock(path: Path) -> list[LockedRequirement]:
    """Every pinned requirement of ``path``; unpinned lines are refused."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read requirements {path}: {exc.strerror}") from exc
    requirements = []
    for line in _logical_lines(text):
        if line.startswith("-"):
            continue
        head = line.split("--hash", 1)[0].strip()
        match = _PIN.match(head)
        if match is None:
            raise ConfigError(f"{path}: not pinned with ==: {head[:80]!r}")
        marker = match.group("marker")
        try:
            if marker:
                Marker(marker)
        except InvalidMarker as exc:
            raise ConfigError(f"{path}: bad environment marker {marker!r}") from exc
        requirements.append(
            LockedRequirement(
                name=canonicalize_name(match.group("name")),
                version=match.group("version"),
                hashes=frozenset(m.group("digest") for m in _HASH.finditer(line)),
                marker=marker.strip() if marker else None,
            )
        )
    return requirements
