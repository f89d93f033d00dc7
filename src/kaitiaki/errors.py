"""The one exception tree of Kaitiaki.

Every error raised by Kaitiaki derives from :class:`KaitiakiError` and carries
a stable machine ``code``::

    KaitiakiError
    ├── ConfigError                 settings or key material unusable (start-up)
    └── Refusal                     a request is refused; becomes a 4xx/5xx reply
        ├── BadRequest              400 malformed path, query, header or body
        │   └── InvalidRequestContext
        ├── NotFound                404 no route matches
        ├── NotAcceptable           406
        ├── PayloadTooLarge         413
        ├── UriTooLong              414
        ├── UnsupportedMediaType    415
        ├── HeadersTooLarge         431
        ├── Unauthenticated         401 no usable credential
        │   └── InvalidToken        401 the bearer token failed verification
        ├── Forbidden               403 authenticated, but not allowed
        │   ├── InsufficientScope
        │   └── Blocked             403 the traffic filter refused the request
        ├── RateLimited             429 a limit or quota is spent
        ├── DependencyUnavailable   503 a control's dependency is down (fail closed)
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


class InvalidRequestContext(BadRequest):
    code = "invalid_request_context"


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


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    bearer_error = "invalid_token"


class ExpiredToken(InvalidToken):
    code = "expired_token"
    issue_code = "expired"


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


class DependencyUnavailable(Refusal):
    status = 503
    code = "dependency_unavailable"
    issue_code = "transient"


class UpstreamFailed(Refusal):
    status = 502
    code = "upstream_failed"
    issue_code = "transient"


class InternalFault(Refusal):
    status = 500
    code = "internal"
    issue_code = "exception"
