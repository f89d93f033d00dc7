"""Audit pinned requirements against an OSV-format advisory snapshot.

The PyPA advisory database is one YAML file per advisory. A pinned version is
affected when an ``affected`` entry for its PyPI package lists it in
``versions`` or falls in an ``ECOSYSTEM`` range (introduced ≤ v < fixed, or
≤ last_affected). Versions are compared with ``packaging``, never as text.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from kaitiaki.deps.lockfile import LockedRequirement
from kaitiaki.errors import ConfigError

__all__ = [
    "Advisories",
    "Finding",
    "Ignore",
    "audit_requirements",
    "load_advisories",
    "read_ignores",
]


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]
    ignored_because: str | None = None


@dataclass(frozen=True, slots=True)
class Ignore:
    advisory: str
    reason: str
    expires: dt.date


@dataclass(frozen=True, slots=True)
class Advisories:
    by_package: dict[str, list[dict[str, Any]]]
    snapshot: str


def read_ignores(path: Path) -> list[Ignore]:
    """Ignore entries from a TOML file: ``[[ignore]]`` id, reason, expires."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read ignore file {path}: {exc}") from exc
    ignores = []
    for entry in data.get("ignore", []):
        advisory, reason = entry.get("id"), entry.get("reason")
        expires = entry.get("expires")
        if not advisory or not reason or not isinstance(expires, dt.date):
            raise ConfigError(
                f"{path}: every [[ignore]] needs id, reason and expires (a date)"
            )
        ignores.append(Ignore(str(advisory), str(reason), expires))
    return ignores


def load_advisories(folder: Path) -> Advisories:
    """Index every advisory under ``folder`` by canonical package name."""
    files = sorted(folder.rglob("*.yaml"))
    if not files:
        raise ConfigError(
            f"no OSV advisories (*.yaml) under {folder}; name the snapshot "
            "folder with --advisories (a checkout of the PyPA advisory database)"
        )
    by_package: dict[str, list[dict[str, Any]]] = {}
    latest = ""
    for file in files:
        try:
            advisory = yaml.safe_load(file.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"unreadable advisory {file}: {exc}") from exc
        # A withdrawn advisory was found not to be a vulnerability.
        if not isinstance(advisory, dict) or advisory.get("withdrawn"):
            continue
        latest = max(latest, str(advisory.get("modified", "")))
        for affected in advisory.get("affected") or []:
            package = affected.get("package") or {}
            if package.get("ecosystem") == "PyPI" and package.get("name"):
                name = canonicalize_name(str(package["name"]))
                by_package.setdefault(name, []).append({**advisory, "_hit": affected})
    return Advisories(by_package, latest[:10])


def _parse(text: object) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _in_range(version: Version, events: list[dict[str, Any]]) -> bool:
    # OSV lists a range's events in ascending order: the last event at or
    # below the version decides whether it is affected.
    affected = False
    for event in events:
        if "introduced" in event:
            start = _parse(event["introduced"])
            if event["introduced"] == "0" or (start is not None and version >= start):
                affected = True
        elif "fixed" in event:
            fixed = _parse(event["fixed"])
            if fixed is not None and version >= fixed:
                affected = False
        elif "last_affected" in event:
            last = _parse(event["last_affected"])
            if last is not None and version > last:
                affected = False
    return affected


def _is_affected(version: Version, affected: dict[str, Any]) -> bool:
    listed = {_parse(item) for item in affected.get("versions") or []}
    if version in listed:
        return True
    return any(
        r.get("type") == "ECOSYSTEM" and _in_range(version, r.get("events") or [])
        for r in affected.get("ranges") or []
    )


def _fixed_versions(affected: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(event["fixed"])
        for r in affected.get("ranges") or []
        for event in r.get("events") or []
        if "fixed" in event
    )


def _ignored(
    advisory: dict[str, Any], ignores: Iterable[Ignore], today: dt.date
) -> str | None:
    names = {str(advisory.get("id")), *map(str, advisory.get("aliases") or [])}
    for entry in ignores:
        if entry.advisory in names and today <= entry.expires:
            return f"{entry.reason} (until {entry.expires.isoformat()})"
    return None


def audit_requirements(
    requirements: Iterable[LockedRequirement],
    advisories: Advisories,
    *,
    ignores: Iterable[Ignore] = (),
    today: dt.date,
) -> list[Finding]:
    """Every advisory affecting a pinned version; expired ignores do not count."""
    ignore_list = list(ignores)
    findings = []
    for requirement in requirements:
        version = _parse(requirement.version)
        if version is None:
            continue
        for advisory in advisories.by_package.get(requirement.name, []):
            if not _is_affected(version, advisory["_hit"]):
                continue
            findings.append(
                Finding(
                    name=requirement.name,
                    version=requirement.version,
                    advisory=str(advisory.get("id")),
                    aliases=tuple(map(str, advisory.get("aliases") or [])),
                    fixed=_fixed_versions(advisory["_hit"]),
                    ignored_because=_ignored(advisory, ignore_list, today),
                )
            )
    return findings
