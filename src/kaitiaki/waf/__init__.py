"""The traffic filter (WAF): hostile-payload rules on the canonical request.

:class:`TrafficFilter` inspects a request in two steps, as CRS does in its
request phases: the head (path, query, selected headers, protocol shape) at
the filter step, and the body (every JSON string, the search form) once it
has been read and parsed. Findings add up; at ``inbound_threshold`` the
request is refused with :class:`~kaitiaki.errors.Blocked` (403, code
``security``) and the audit event records the rule ids and the score.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kaitiaki.errors import Blocked
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import WafSettings
from kaitiaki.waf.engine import Findings, RuleEngine, json_strings
from kaitiaki.waf.protocol import protocol_anomalies

__all__ = ["Findings", "RuleEngine", "TrafficFilter", "check_networks"]

logger = logging.getLogger("kaitiaki.waf")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Credentials are checked by their own controls and never pattern-matched.
_NEVER_INSPECTED = frozenset({"authorization", "dpop", "cookie", "content-length"})


class TrafficFilter:
    """Compiled once per gateway from :class:`WafSettings`."""

    def __init__(self, settings: WafSettings) -> None:
        self.settings = settings
        self.engine = RuleEngine(settings.paranoia_level)
        if settings.detection_only:
            logger.warning("traffic filter in detection-only mode: nothing blocked")

    def _excluded(self, route: str, path: str, target: str) -> frozenset[str]:
        rules: set[str] = set()
        for exclusion in self.settings.exclusions:
            if exclusion.targets and target not in exclusion.targets:
                continue
            prefix = exclusion.route
            if prefix in (route, path) or path.startswith(prefix + "/"):
                rules.update(exclusion.rules)
        return frozenset(rules)

    def inspect_head(
        self, request: CanonicalRequest, route: str, findings: Findings
    ) -> None:
        """Path, query names and values, inspected headers, protocol shape."""
        if not self.settings.enabled:
            return
        scan = self.engine.scan
        path = request.path
        scan("path", path, findings, excluded=self._excluded(route, path, "path"))
        self.inspect_query(request.query, route, path, findings)
        excluded = self._excluded(route, path, "header")
        for name in self._header_names(request.headers):
            for value in request.headers.get(name, ()):
                scan("header", value, findings, excluded=excluded, header=name)
        for rule_id, score in protocol_anomalies(
            request, self.settings.paranoia_level
        ).items():
            if rule_id not in excluded:
                findings.rules.setdefault(rule_id, score)

    def _header_names(self, headers: dict[str, list[str]]) -> list[str]:
        names = self.settings.inspected_headers
        if "*" in names:
            return [name for name in headers if name not in _NEVER_INSPECTED]
        return [name for name in names if name not in _NEVER_INSPECTED]

    def inspect_query(
        self,
        query: tuple[tuple[str, str], ...],
        route: str,
        path: str,
        findings: Findings,
    ) -> None:
        if not self.settings.enabled:
            return
        excluded = self._excluded(route, path, "query")
        for name, value in query:
            self.engine.scan("query", name, findings, excluded=excluded)
            self.engine.scan("query", value, findings, excluded=excluded)

    def inspect_resource(
        self, resource: Any, route: str, path: str, findings: Findings
    ) -> None:
        """Every string value (and key) of a parsed JSON body."""
        if not self.settings.enabled:
            return
        body = self._excluded(route, path, "body")
        narrative = self._excluded(route, path, "narrative")
        for where, value in json_strings(resource):
            if where == "text.div" or where.endswith(".text.div"):
                self.engine.scan("narrative", value, findings, excluded=narrative)
            else:
                self.engine.scan("body", value, findings, excluded=body)

    def decide(self, findings: Findings) -> None:
        """Refuse once the anomaly score reaches the threshold."""
        if findings.score < self.settings.inbound_threshold:
            return
        if self.settings.detection_only:
            return
        raise Blocked(
            "The request was refused by the traffic filter.", detail="waf_block"
        )


def check_networks(
    address: str, allow: tuple[_Network, ...], deny: tuple[_Network, ...]
) -> bool:
    """True when ``address`` may connect: not denied, and allowed if listed."""
    if not allow and not deny:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return not allow
    if any(ip in network for network in deny):
        return False
    return not allow or any(ip in network for network in allow)
