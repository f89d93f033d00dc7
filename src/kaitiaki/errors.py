"""The one exception tree of Kaitiaki.

Every error raised by Kaitiaki derives from :class:`KaitiakiError` and carries
a stable machine ``code``::

    KaitiakiError
    ├── ConfigError                 settings or key material unusable (start-up)
    ├── ProbeError                  the conformance probe cannot go on safely
    │   ├── OutOfScope              a request would leave the probed hosts or methods
    │   └── BudgetSpent             the profile's request budget is used up
    ├── StoreUnavailable            the rate limiter's counter store is unreachable
    ├── AuditSinkError              the audit sink cannot write or read
    └── Refusal                     a request is refused; becomes a 4xx/5xx reply
        ├── BadRequest              400 malformed path, query, header or body
        │   ├── InvalidRequestContext
        │   │   └── MissingRequestContext
        │   └── InvalidContent      400 element structure, required or value
        ├── NotFound                404 no route matches
        ├── NotAcceptable           406
        ├── RequestTimeout          408 the request head did not arrive in time
        ├── PayloadTooLarge         413
        ├── UriTooLong              414
        ├── UnsupportedMediaType    415
        ├── HeadersTooLarge         431
        ├── Unauthenticated         401 no usable credential
        │   └── InvalidToken        401 the bearer token failed verification
        │       ├── ExpiredToken
        │       └── InvalidDpopProof    401 the DPoP proof failed (RFC 9449)
        │           └── UseDpopNonce    401 a fresh server nonce is required
        ├── Forbidden               403 authenticated, but not allowed
        │   ├── InsufficientScope
        │   └── Blocked             403 the traffic filter refused the request
        ├── RateLimited             429 a limit or quota is spent
        │   └── CostOverLimit       429 one request costs more than the whole limit
        ├── DependencyUnavailable   503 a control's dependency is down (fail closed)
        │   └── LimiterUnavailable  503 the counter store is down, no degraded mode
        ├── UpstreamFailed          502 the upstream could not be reached
        └── InternalFault           500 a fault of ours; details only in the log

A refusal's ``message`` is safe to show a client: it never contains any part
of the request. ``detail`` is for the audit trail and diagnostic logs only,
and holds codes and reasons, never secrets or identifying data.
"""

from __future__ import annotations


class KaitiakiError(Exception):
    """Base of every error Kaitiaki raises."""

    code = "error"


class ConfigError(KaitiakiError):
    """Settings, secrets or keys cannot be used; names the setting at fault."""

    code = "config"


class ProbeError(KaitiakiError):
    """The conformance probe stopped a check; the message says why."""

    code = "probe"


class OutOfScope(ProbeError):
    """A probe request would reach a host or use a method the profile forbids."""

    code = "probe_out_of_scope"


class BudgetSpent(ProbeError):
    """The profile's request budget is spent; no more requests are sent."""

    code = "probe_budget_spent"


class StoreUnavailable(KaitiakiError):
    """The limiter's counter store (Redis) could not answer; never shown to a
    client: the limiter turns it into a refusal or its degraded mode."""

    code = "store_unavailable"


class AuditSinkError(KaitiakiError):
    """The audit sink failed; the message names the sink, never a record."""

    code = "audit_sink"


class Refusal(KaitiakiError):
    """A request is refused.

    ``status`` is the HTTP status, ``issue_code`` the FHIR IssueType used in
    the OperationOutcome, ``message`` a client-safe sentence, ``expression``
    the failing element (FHIRPath-like, never a value from the request) and
    ``detail`` a reason code for the audit event.
    """

    status = 400
    code = "refused"
    issue_code = "processing"

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or self.code
        self.expression = expression
        self.headers = dict(headers or {})


class BadRequest(Refusal):
    status = 400
    code = "bad_request"
    issue_code = "invalid"


class NotSupported(BadRequest):
    """A FHIR feature the gateway does not pass on: refused, never dropped."""

    code = "not_supported"
    issue_code = "not-supported"


class InvalidRequestContext(BadRequest):
    code = "invalid_request_context"


class InvalidContent(BadRequest):
    """A body or parameter breaks its definition; ``issue_code`` says how:
    ``structure`` (unknown or misshapen element), ``required`` or ``value``."""

    code = "invalid_content"

    def __init__(
        self, message: str, *, issue_code: str, detail: str, expression: str | None
    ) -> None:
        super().__init__(message, detail=detail, expression=expression)
        self.issue_code = issue_code


class NotFound(Refusal):
    status = 404
    code = "not_found"
    issue_code = "not-found"


class MethodNotAllowed(Refusal):
    status = 405
    code = "method_not_allowed"
    issue_code = "not-supported"


class NotAcceptable(Refusal):
    status = 406
    code = "not_acceptable"
    issue_code = "not-supported"


class RequestTimeout(Refusal):
    status = 408
    code = "request_timeout"
    issue_code = "timeout"


class PayloadTooLarge(Refusal):
    status = 413
    code = "payload_too_large"
    issue_code = "too-long"


class UriTooLong(Refusal):
    status = 414
    code = "uri_too_long"
    issue_code = "too-long"


class UnsupportedMediaType(Refusal):
    status = 415
    code = "unsupported_media_type"
    issue_code = "not-supported"


class HeadersTooLarge(Refusal):
    status = 431
    code = "headers_too_large"
    issue_code = "too-long"


class Unauthenticated(Refusal):
    """No credential was presented where one is needed (RFC 6750 §3.1)."""

    status = 401
    code = "unauthenticated"
    issue_code = "login"
    bearer_error: str | None = None
    #: The authentication scheme the challenge names (RFC 6750 or RFC 9449).
    scheme = "Bearer"


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    bearer_error = "invalid_token"


class ExpiredToken(InvalidToken):
    code = "expired_token"
    issue_code = "expired"


class InvalidDpopProof(InvalidToken):
    code = "invalid_dpop_proof"
    bearer_error = "invalid_dpop_proof"
    scheme = "DPoP"


class UseDpopNonce(InvalidDpopProof):
    code = "use_dpop_nonce"
    bearer_error = "use_dpop_nonce"


class Forbidden(Refusal):
    status = 403
    code = "forbidden"
    issue_code = "forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class Blocked(Forbidden):
    """Refused by the traffic filter or an address list; names no rule."""

    code = "blocked"
    issue_code = "security"


class RateLimited(Refusal):
    status = 429
    code = "rate_limited"
    issue_code = "throttled"


class CostOverLimit(RateLimited):
    """Waiting cannot help: the request must ask for less (FHIR ``too-costly``)."""

    code = "cost_over_limit"
    issue_code = "too-costly"


class DependencyUnavailable(Refusal):
    status = 503
    code = "dependency_unavailable"
    issue_code = "transient"


class LimiterUnavailable(DependencyUnavailable):
    code = "limiter_unavailable"


class UpstreamFailed(Refusal):
    status = 502
    code = "upstream_failed"
    issue_code = "transient"


class InternalFault(Refusal):
    status = 500
    code = "internal"
    issue_code = "exception"


class MissingRequestContext(InvalidRequestContext):
    code = "missing_request_context"
    issue_code = "required"
