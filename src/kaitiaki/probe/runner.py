"""Run the checks against a target, one after another, within the profile's
bounds; a check that cannot finish is an error, never a pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata

import httpx

from kaitiaki.errors import KaitiakiError, ProbeError
from kaitiaki.probe.checks import ALL_CHECKS
from kaitiaki.probe.http import ProbeHttp
from kaitiaki.probe.model import Check, CheckResult, Outcome, Report, Verdict
from kaitiaki.probe.profile import Profile, tls_context
from kaitiaki.probe.redact import Redactor
from kaitiaki.probe.target import Target

__all__ = ["Progress", "run_probe", "select_checks"]

logger = logging.getLogger("kaitiaki.probe")

Progress = Callable[[Check, CheckResult | None], None]

_NEEDS_TEXT = {
    "writes": "the profile does not allow writes (safety.allow_writes, clients.writer)",
    "destructive": "the profile does not allow destructive methods "
    "(safety.allow_destructive)",
    "disruptive": "the profile does not allow disruptive checks "
    "(safety.allow_disruptive, clients.other)",
    "logs": "no log files or audit export were supplied (logging.*)",
    "sbom": "no SBOM or requirements file was supplied (dependencies.*)",
}


def select_checks(only: Iterable[str] = ()) -> tuple[Check, ...]:
    """All checks, or those whose id equals or starts with one of ``only``."""
    wanted = tuple(only)
    if not wanted:
        return ALL_CHECKS
    chosen = tuple(c for c in ALL_CHECKS if c.id.startswith(wanted))
    if not chosen:
        raise ProbeError(f"no check matches {', '.join(wanted)}")
    return chosen


def _run_one(check: Check, target: Target, granted: frozenset[str]) -> Outcome:
    missing = sorted(check.needs - granted)
    if missing:
        return Outcome(
            Verdict.SKIPPED, "not run: " + "; ".join(_NEEDS_TEXT[m] for m in missing)
        )
    try:
        return check.run(target)
    except KaitiakiError as exc:
        # A spent budget, an out-of-scope URL, a refused token request.
        return Outcome(Verdict.ERROR, f"the check could not finish: {exc}")
    except (httpx.HTTPError, OSError) as exc:
        return Outcome(
            Verdict.ERROR, f"the check could not finish: {type(exc).__name__}"
        )


def _version() -> str:
    try:
        return metadata.version("kaitiaki")
    except metadata.PackageNotFoundError:
        return "unknown"


def _http_for(
    base_url: str, profile: Profile, transport: httpx.BaseTransport | None
) -> ProbeHttp:
    """The guarded client: the base URL, the issuer and the token endpoint."""
    origins = [base_url, profile.auth.issuer]
    if profile.auth.token_endpoint:
        origins.append(profile.auth.token_endpoint)
    safety = profile.safety
    return ProbeHttp(
        origins,
        redactor=Redactor(),
        max_requests=safety.max_requests,
        rate_per_second=safety.rate_per_second,
        allow_destructive=safety.allow_destructive,
        timeout=safety.timeout_seconds,
        user_agent=f"kaitiaki-probe/{_version()}",
        tls=tls_context(profile),
        transport=transport,
    )


def _run_all(
    checks: Iterable[Check], target: Target, progress: Progress | None
) -> list[CheckResult]:
    granted = target.profile.capabilities()
    results = []
    for check in checks:
        if progress:
            progress(check, None)
        began = time.perf_counter()
        outcome = _run_one(check, target, granted)
        result = CheckResult(check, outcome, round(time.perf_counter() - began, 3))
        logger.debug("check %s: %s", check.id, outcome.verdict.value)
        results.append(result)
        if progress:
            progress(check, result)
    return results


def run_probe(
    base_url: str,
    profile: Profile,
    *,
    only: Iterable[str] = (),
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Report:
    """Probe ``base_url`` with ``profile``; returns the full report."""
    checks = select_checks(only)
    started = datetime.now(UTC)
    http = _http_for(base_url, profile, transport)
    target = Target(base_url, profile, http)
    try:
        results = _run_all(checks, target, progress)
    finally:
        http.close()
    return Report(
        base_url=target.base_url,
        profile=profile.name,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        results=tuple(results),
        requests_sent=http.budget.sent,
        probe_version=_version(),
    )
