"""``kaitiaki check-config FILE``: what in a settings file weakens the gateway.

It reads the file as the gateway would, without starting anything, and
reports inline secrets, permissive file modes, weak or missing issuer
settings, admin exposure, permissive CORS, routes without a data
classification and fail-open settings. Each finding has a level: ``error``
(the gateway must not run so), ``warning`` (weaker than the default, by
name) or ``example`` (a documentation placeholder still in place).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError

from kaitiaki.iam.files import file_problem
from kaitiaki.iam.masking import is_secret_key
from kaitiaki.iam.secrets import ACCEPTED_FORMS, is_reference
from kaitiaki.iam.startup import admin_problems, is_loopback, secret_references
from kaitiaki.settings import Settings

__all__ = ["Finding", "check_config", "exit_status"]

Level = Literal["error", "warning", "example"]
_LONG_LIFETIME = 3600
_FAIL_OPEN_VALUES = ("fail_open", "fail-open", "open", "allow")
_FAIL_OPEN_KEYS = ("on_failure", "failure_mode", "degraded_mode", "on_error")
_ORIGIN_KEYS = ("allow_origins", "allowed_origins", "origins", "allow_origin")


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():8} {self.key}: {self.message}"


def _walk(data: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every value in raw TOML data: (dotted key, last key name, value)."""
    if isinstance(data, dict):
        for name, value in data.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            yield key, str(name), value
            yield from _walk(value, key)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _walk(item, f"{prefix}[{index}]")


def _secret_findings(key: str, name: str, value: Any) -> Iterator[Finding]:
    if not isinstance(value, str):
        return
    if is_secret_key(name) and not is_reference(value):
        yield Finding(
            "error", key, f"inline secret; write a reference: {ACCEPTED_FORMS}"
        )
    elif "://" in value and _url_password(value):
        yield Finding(
            "error", key, "the URL holds a password; put it in a secret reference"
        )


def _url_password(value: str) -> bool:
    try:
        return bool(urlsplit(value).password)
    except ValueError:
        return False


def _exposure_findings(key: str, name: str, value: Any) -> Iterator[Finding]:
    if name in _ORIGIN_KEYS and (
        value == "*" or (isinstance(value, list) and "*" in value)
    ):
        yield Finding("error", key, "permissive CORS: '*' lets any web origin call")
    if name == "routes" and isinstance(value, list):
        for index, route in enumerate(value):
            if isinstance(route, dict) and not route.get("classification"):
                yield Finding(
                    "error", f"{key}[{index}]", "route without a data classification"
                )
    fail_open = (name == "fail_open" or name.endswith("_fail_open")) and value is True
    if fail_open or (name in _FAIL_OPEN_KEYS and value in _FAIL_OPEN_VALUES):
        yield Finding(
            "warning", key, "fail-open: a failed dependency lets requests pass"
        )


def _example_findings(key: str, value: Any) -> Iterator[Finding]:
    if not isinstance(value, str) or "://" not in value:
        return
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return
    labels = host.split(".")
    if "example" in labels or host.endswith((".invalid", ".test")):
        yield Finding("example", key, f"example host {host}: replace it")


def _raw_findings(raw: dict[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    for key, name, value in _walk(raw):
        findings += _secret_findings(key, name, value)
        findings += _exposure_findings(key, name, value)
        findings += _example_findings(key, value)
    return findings


def _auth_findings(settings: Settings) -> Iterator[Finding]:
    auth = settings.auth
    issuer = urlsplit(auth.issuer)
    if issuer.scheme != "https" and not is_loopback(issuer.hostname or ""):
        yield Finding(
            "error", "auth.issuer", "must be an https URL (loopback excepted)"
        )
    if "RS256" in auth.algorithms and not auth.allow_rs256:
        yield Finding(
            "warning",
            "auth.algorithms",
            "RS256 is listed but ignored without allow_rs256",
        )
    if auth.allow_rs256:
        yield Finding("warning", "auth.allow_rs256", "RS256 compatibility is on")
    if auth.max_token_lifetime_seconds > _LONG_LIFETIME:
        yield Finding(
            "warning",
            "auth.max_token_lifetime_seconds",
            f"tokens may live longer than {_LONG_LIFETIME} s",
        )
    if not auth.require_at_jwt_typ:
        yield Finding(
            "warning", "auth.require_at_jwt_typ", "typ at+jwt is not required"
        )


def _file_findings(settings: Settings) -> Iterator[Finding]:
    paths = [
        (f"{where}", Path(ref.target))
        for where, ref in secret_references(settings)
        if ref.scheme == "file"
    ]
    if settings.dev_issuer is not None:
        paths += [
            (f"dev_issuer.clients[{i}].key_path", Path(client.key_path))
            for i, client in enumerate(settings.dev_issuer.clients)
        ]
    for key, path in paths:
        if not path.exists():
            yield Finding("warning", key, f"{path} does not exist yet")
            continue
        problem = file_problem(path)
        if problem is not None:
            yield Finding("error", key, f"{path} {problem}")
    keys = Path(settings.keys.dir)
    if keys.is_dir() and keys.stat().st_mode & 0o077:
        yield Finding(
            "error", "keys.dir", f"{keys} is open to group or others: chmod 700"
        )


def _validation_findings(error: ValidationError, seen: set[str]) -> list[Finding]:
    findings = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if key not in seen:
            findings.append(Finding("error", key, item["msg"]))
    return findings


def check_config(path: Path) -> list[Finding]:
    """Every finding for the settings file at ``path``, most severe first."""
    findings: list[Finding] = []
    problem = file_problem(path)
    if problem is not None:
        findings.append(Finding("error", "(settings file)", f"{path} {problem}"))
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [*findings, Finding("error", "(settings file)", f"unreadable: {exc}")]

    findings += _raw_findings(raw)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        return _sorted(findings + _validation_findings(exc, {f.key for f in findings}))
    findings += _auth_findings(settings)
    findings += [
        Finding("error", "admin", text) for text in admin_problems(settings.admin)
    ]
    findings += _file_findings(settings)
    return _sorted(findings)


def _sorted(findings: list[Finding]) -> list[Finding]:
    order = {"error": 0, "example": 1, "warning": 2}
    return sorted(findings, key=lambda finding: (order[finding.level], finding.key))


def exit_status(findings: list[Finding], *, strict: bool, allow_examples: bool) -> int:
    """0 clean; 1 when an error (or a warning under ``strict``, or an example
    value unless ``allow_examples``) is found."""
    levels = {finding.level for finding in findings}
    if "error" in levels or (strict and "warning" in levels):
        return 1
    return 1 if "example" in levels and not allow_examples else 0
