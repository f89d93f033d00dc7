"""Trusted dependencies: the lock, the installed environment, known advisories."""

from kaitiaki.deps.advisories import Finding, audit_requirements, load_advisories
from kaitiaki.deps.lockfile import LockedRequirement, read_lock
from kaitiaki.deps.verify import Discrepancy, verify_environment

__all__ = [
    "Discrepancy",
    "Finding",
    "LockedRequirement",
    "audit_requirements",
    "load_advisories",
    "read_lock",
    "verify_environment",
]
