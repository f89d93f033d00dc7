"""Every check of the probe, in the order they run.

Discovery and token checks come first; throttling comes last but for the
evidence checks, because its burst leaves the reader client throttled.
"""

from __future__ import annotations

from kaitiaki.probe.checks import (
    authentication,
    authorisation,
    authserver,
    evidence,
    filtering,
    throttling,
    transport,
    validation,
    zerotrust,
)
from kaitiaki.probe.model import Check

__all__ = ["ALL_CHECKS", "check_ids"]

ALL_CHECKS: tuple[Check, ...] = (
    *authserver.CHECKS,
    *authentication.CHECKS,
    *authorisation.CHECKS,
    *validation.CHECKS,
    *zerotrust.CHECKS,
    *filtering.CHECKS,
    *transport.CHECKS,
    *throttling.CHECKS,
    *evidence.CHECKS,
)


def check_ids() -> list[str]:
    return [check.id for check in ALL_CHECKS]
