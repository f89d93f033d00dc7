"""Per-route policy: grant types, assurance level, Request-Context, raw scopes.

The first ``[[authorise.routes]]`` entry whose interactions and resource types
match decides; its unset fields fall back to ``[authorise]``. Client
credentials (a token without an end user) are the standard's open conflict
(catalogue §6 item 1): forbidden for MEDICAL IN CONFIDENCE user access
(CLS-08), yet used by every Health NZ FHIR IG with the user in Request-Context.
The named policy ``with_request_context`` (the default) allows them only with
a valid Request-Context; ``forbid`` and ``allow`` are the two other choices.
User tokens must carry an ``acr`` at least ``min_acr`` (LOA-03).
"""

from __future__ import annotations

from dataclasses import dataclass

from kaitiaki.errors import Forbidden, InsufficientScope, MissingRequestContext
from kaitiaki.fhir.interactions import Interaction
from kaitiaki.fhir.scopes import Grants
from kaitiaki.nz.request_context import RequestContext, RequestContextReader
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import AuthoriseSettings, GrantPolicy, RoutePolicy
from kaitiaki.tokens.jwt import Principal

__all__ = ["EffectivePolicy", "apply_policy", "effective_policy"]


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    name: str
    required_scopes: tuple[str, ...]
    client_credentials: GrantPolicy
    min_acr: str
    request_context: str


def _matches(route: RoutePolicy, interaction: Interaction) -> bool:
    if route.interactions and interaction.name not in route.interactions:
        return False
    kind = interaction.resource_type or "*"
    return not route.resource_types or kind in route.resource_types


def effective_policy(
    settings: AuthoriseSettings, interaction: Interaction
) -> EffectivePolicy:
    """The policy for ``interaction``: the first matching route over the defaults."""
    route = next((r for r in settings.routes if _matches(r, interaction)), None)
    if route is None:
        return EffectivePolicy(
            "default",
            settings.required_scopes,
            settings.client_credentials,
            settings.min_acr,
            settings.request_context,
        )
    return EffectivePolicy(
        route.name,
        route.required_scopes or settings.required_scopes,
        route.client_credentials or settings.client_credentials,
        route.min_acr or settings.min_acr,
        route.request_context or settings.request_context,
    )


def _missing_context() -> MissingRequestContext:
    return MissingRequestContext(
        "A Request-Context header is required.",
        detail="request_context_missing",
        expression="Request-Context",
    )


def _check_acr(principal: Principal, minimum: str, levels: tuple[str, ...]) -> None:
    needed = levels.index(minimum)
    if needed == 0:
        return
    if principal.acr not in levels or levels.index(principal.acr) < needed:
        raise Forbidden(
            "The authentication assurance level is too low.", detail="acr_too_low"
        )


def apply_policy(
    principal: Principal,
    grants: Grants,
    request: CanonicalRequest,
    interaction: Interaction,
    settings: AuthoriseSettings,
    *,
    allow_list: tuple[str, ...] = (),
    contexts: RequestContextReader | None = None,
) -> RequestContext | None:
    """Apply the route's policy; return the validated Request-Context, if any.

    ``contexts`` is the gateway's reader of ``settings.context`` (it remembers
    valid values); without one, the header is read from scratch.
    """
    policy = effective_policy(settings, interaction)
    header = request.header("request-context")
    context = None
    if header is not None:
        if contexts is None:
            contexts = RequestContextReader(settings.context, allow_list, memo_size=0)
        context = contexts.read(header, client_id=principal.client_id)
    if context is None and policy.request_context == "required":
        raise _missing_context()

    if principal.client_credentials:
        if policy.client_credentials == "forbid":
            raise Forbidden(
                "Client credentials are not accepted here.",
                detail="client_credentials_forbidden",
            )
        if policy.client_credentials == "with_request_context" and context is None:
            raise _missing_context()
    else:
        _check_acr(principal, policy.min_acr, settings.acr_levels)

    missing = [scope for scope in policy.required_scopes if scope not in grants.raw]
    if missing:
        raise InsufficientScope(
            "The access token does not permit this request.",
            detail="scope_required_by_route",
        )
    return context
