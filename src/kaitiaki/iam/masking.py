"""The effective configuration as the admin plane shows it: secrets masked.

Secret references are shown as references (they say where, not what); any
value under a key that names a secret and is not a reference, and any
password inside a URL, is replaced by a mask.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kaitiaki.iam.secrets import is_reference

__all__ = ["MASK", "is_secret_key", "masked"]

MASK = "********"
_SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|secret|token|api_?key|private_?key|credential|hmac_?key)$",
    re.IGNORECASE,
)


def is_secret_key(name: str) -> bool:
    """Whether a settings key, by its name, holds a secret."""
    return bool(_SECRET_KEY.search(name))


def _mask_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.password:
        return value
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{parts.username or ''}:{MASK}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, item) for item in value]
    if not isinstance(value, str):
        return value
    if is_secret_key(key) and not is_reference(value):
        return MASK
    return _mask_url(value) if "://" in value else value


def masked(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of settings data (``model_dump(mode="json")``) with secrets masked."""
    return {key: _mask_value(key, value) for key, value in data.items()}
