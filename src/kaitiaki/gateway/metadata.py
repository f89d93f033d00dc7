"""Load the validate step's definitions at start-up, with the upstream's
CapabilityStatement when the settings ask for it (fetched once, fail closed)."""

from __future__ import annotations

import logging

from kaitiaki.controls.content import Validator
from kaitiaki.errors import ConfigError, UpstreamFailed
from kaitiaki.gateway.upstream import Upstream
from kaitiaki.settings import Settings
from kaitiaki.strictjson import StrictJSONError, loads_strict

__all__ = ["load_validator"]

logger = logging.getLogger("kaitiaki.gateway")

_MAX_METADATA_BYTES = 8 * 1_048_576


async def load_validator(settings: Settings, upstream: Upstream | None) -> Validator:
    """The definitions; refuse to start if the CapabilityStatement is needed
    but cannot be read (never validate against nothing)."""
    if settings.validation.search_parameters != "capability":
        return Validator.load(settings.validation)
    if upstream is None:
        raise ConfigError("validation.search_parameters: no upstream to ask")
    url = settings.gateway.upstream.rstrip("/") + "/metadata"
    try:
        reply = await upstream.send(
            "GET",
            url,
            {"accept": "application/fhir+json"},
            None,
            timeout=settings.gateway.upstream_timeout_seconds,
        )
    except UpstreamFailed as exc:
        raise ConfigError(
            "validation.search_parameters = 'capability': the upstream's "
            "/metadata could not be fetched"
        ) from exc
    body = reply.body
    if reply.status != 200:
        raise ConfigError("the upstream's /metadata did not answer 200")
    if len(body) > _MAX_METADATA_BYTES:
        raise ConfigError("the upstream's /metadata is too large")
    try:
        statement = loads_strict(body, max_depth=32)
    except StrictJSONError as exc:
        raise ConfigError("the upstream's /metadata is not strict JSON") from exc
    if (
        not isinstance(statement, dict)
        or statement.get("resourceType") != "CapabilityStatement"
    ):
        raise ConfigError("the upstream's /metadata is not a CapabilityStatement")
    logger.info("search parameters from the upstream's CapabilityStatement")
    return Validator.load(settings.validation, statement)
