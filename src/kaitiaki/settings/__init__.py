"""The one validated, immutable settings object, loaded from TOML.

``load_settings(None)`` returns the embedded demo settings that ``make run``
uses, so every ``kaitiaki`` command run from the repository root without
``--config`` talks to the running demo. Relative paths resolve against the
current directory.

Each section's models live in a module of their own; import them from here.
"""

from kaitiaki.limits.config import LimitSettings
from kaitiaki.settings.audit import AuditSettings, MetricsSettings
from kaitiaki.settings.auth import (
    DEFAULT_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    AuthSettings,
    DpopSettings,
    IntrospectionSettings,
    MtlsSettings,
    SenderConstraint,
)
from kaitiaki.settings.authorise import (
    DEFAULT_PURPOSES,
    AuthoriseSettings,
    GrantPolicy,
    RequestContextSettings,
    RoutePolicy,
)
from kaitiaki.settings.base import Port, RateText
from kaitiaki.settings.demo import DemoClient, DevIssuerSettings, RefApiSettings
from kaitiaki.settings.gateway import (
    CorsSettings,
    GatewaySettings,
    RestRoute,
    UpstreamAuthSettings,
)
from kaitiaki.settings.iam import (
    AdminSettings,
    KeySettings,
    SecretsSettings,
    VaultSettings,
)
from kaitiaki.settings.loading import Settings, load_settings, parse_settings
from kaitiaki.settings.validation import ValidationSettings
from kaitiaki.settings.waf import WafExclusion, WafSettings

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_PURPOSES",
    "SUPPORTED_ALGORITHMS",
    "AdminSettings",
    "AuditSettings",
    "AuthSettings",
    "AuthoriseSettings",
    "CorsSettings",
    "DemoClient",
    "DevIssuerSettings",
    "DpopSettings",
    "GatewaySettings",
    "GrantPolicy",
    "IntrospectionSettings",
    "KeySettings",
    "LimitSettings",
    "MetricsSettings",
    "MtlsSettings",
    "Port",
    "RateText",
    "RefApiSettings",
    "RequestContextSettings",
    "RestRoute",
    "RoutePolicy",
    "SecretsSettings",
    "SenderConstraint",
    "Settings",
    "UpstreamAuthSettings",
    "ValidationSettings",
    "VaultSettings",
    "WafExclusion",
    "WafSettings",
    "load_settings",
    "parse_settings",
]
