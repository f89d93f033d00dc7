"""Check the installed environment against the lock files.

For every locked distribution that applies here: it is installed, at the
locked version, and every installed file that its RECORD lists with a hash
still has that hash. Installed distributions that no lock names are reported
too, except the project itself and the installer. A tampered file, a swapped
version or a package slipped in beside the lock are all discrepancies.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from kaitiaki.deps.lockfile import LockedRequirement

__all__ = ["Discrepancy", "verify_environment"]

_UNLOCKED_OK = frozenset({"pip", "kaitiaki"})


@dataclass(frozen=True, slots=True)
class Discrepancy:
    name: str
    problem: str

    def __str__(self) -> str:
        return f"{self.name}: {self.problem}"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _record_problems(dist: metadata.Distribution) -> list[str]:
    problems = []
    for item in dist.files or []:
        if item.hash is None or item.hash.mode != "sha256":
            continue
        path = Path(str(dist.locate_file(item)))
        try:
            actual = _file_digest(path)
        except OSError:
            problems.append(f"file missing: {item}")
            continue
        if actual != f"sha256={item.hash.value}":
            problems.append(f"file changed since install: {item}")
    return problems


def verify_environment(
    locked: Iterable[LockedRequirement],
    *,
    optional: Iterable[LockedRequirement] = (),
    path: list[str] | None = None,
) -> list[Discrepancy]:
    """Discrepancies between the lock and the distributions on ``path``.

    ``optional`` requirements (the benchmark lock) need not be installed, but
    one that is must match its pin and its RECORD like any other."""
    installed: dict[str, metadata.Distribution] = {
        str(canonicalize_name(dist.metadata["Name"])): dist
        for dist in (
            metadata.distributions(path=path) if path else metadata.distributions()
        )
    }
    found: list[Discrepancy] = []
    wanted = {req.name: req for req in locked if req.applies()}
    extra = {
        req.name: req
        for req in optional
        if req.applies() and req.name not in wanted and req.name in installed
    }
    for name, requirement in sorted({**wanted, **extra}.items()):
        dist = installed.get(name)
        if dist is None:
            found.append(Discrepancy(name, "locked but not installed"))
            continue
        if dist.version != requirement.version:
            found.append(
                Discrepancy(
                    name, f"installed {dist.version}, locked {requirement.version}"
                )
            )
        found += [Discrepancy(name, problem) for problem in _record_problems(dist)]
    for name in sorted(set(installed) - set(wanted) - set(extra) - _UNLOCKED_OK):
        found.append(Discrepancy(name, "installed but in no lock file"))
    return found
