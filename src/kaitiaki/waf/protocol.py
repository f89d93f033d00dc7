"""Protocol anomalies of the request as a whole (after CRS 920 and 921).

Framing, size, path and character rules are enforced earlier, at the edge;
these are the shapes that are well-formed HTTP yet never valid FHIR traffic.
"""

from __future__ import annotations

from kaitiaki.request import CanonicalRequest

__all__ = ["protocol_anomalies"]

# Header fields no FHIR client sends and some servers act on (CRS 920450).
_RESTRICTED = frozenset(
    {
        "proxy",
        "lock-token",
        "content-range",
        "translate",
        "if",
        "request-range",
        "back-end-server",
        "x-forwarded-server",
    }
)
_SINGLE = ("content-type", "content-length", "host", "authorization", "accept")
_NO_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def protocol_anomalies(request: CanonicalRequest, paranoia: int) -> dict[str, int]:
    """Rule id → score for every anomaly of the request."""
    found: dict[str, int] = {}
    headers = request.headers
    if request.method in _NO_BODY and _has_body(headers):
        found["protocol-body-without-meaning"] = 5
    if any(name in _RESTRICTED for name in headers):
        found["protocol-restricted-header"] = 5
    if any(len(headers.get(name, ())) > 1 for name in _SINGLE):
        found["protocol-repeated-header"] = 5
    if any(not value.strip() for value in headers.get("host", ())):
        found["protocol-empty-host"] = 5
    if paranoia >= 2:
        if not headers.get("user-agent"):
            found["protocol-missing-user-agent"] = 2
        if not headers.get("accept"):
            found["protocol-missing-accept"] = 2
    return found


def _has_body(headers: dict[str, list[str]]) -> bool:
    if "transfer-encoding" in headers:
        return True
    return any(
        value.strip() not in ("", "0") for value in headers.get("content-length", ())
    )
