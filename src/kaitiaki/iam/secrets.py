"""Secret references and the values they resolve to.

Settings never hold a secret, only a reference to where it lives:
``env:NAME``, ``file:/path`` (an owner-only file) or ``vault:path#field``
(HashiCorp Vault). A resolved value is a :class:`Secret`, whose ``repr``,
``str`` and format never show it, so it cannot leak into a log line or an
error message by accident.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer

from kaitiaki.errors import ConfigError
from kaitiaki.iam.files import read_owner_only

__all__ = [
    "ACCEPTED_FORMS",
    "Secret",
    "SecretRef",
    "SecretReference",
    "SecretStore",
    "is_reference",
    "parse_reference",
]

ACCEPTED_FORMS = "'env:NAME', 'file:/absolute/path' or 'vault:mount/path#field'"
_MASK = "********"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_VAULT = re.compile(r"([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+)#([A-Za-z0-9_.-]+)")

Scheme = Literal["env", "file", "vault"]


class Secret:
    """A secret value that shows itself only through :meth:`reveal`."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, *, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def reveal_bytes(self) -> bytes:
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return f"Secret({self.source}, {_MASK})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal_bytes(), other.reveal_bytes())

    # Equal values must hash alike, and a hash of the value would leak: unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives; safe to show, log and write back to a file."""

    scheme: Scheme
    target: str
    field: str | None = None

    def __str__(self) -> str:
        suffix = f"#{self.field}" if self.field else ""
        return f"{self.scheme}:{self.target}{suffix}"


def _inline_refused() -> ValueError:
    # Never echo the value: it may be the secret itself.
    return ValueError(
        f"holds a secret, so it must be a reference, not the value; "
        f"accepted forms: {ACCEPTED_FORMS}"
    )


def parse_reference(text: str) -> SecretRef:
    """Parse a reference; anything else raises ValueError naming the forms."""
    scheme, colon, rest = text.partition(":")
    if not colon:
        raise _inline_refused()
    if scheme == "env" and _ENV_NAME.fullmatch(rest):
        return SecretRef("env", rest)
    if scheme == "file" and rest.startswith("/") and "\x00" not in rest:
        return SecretRef("file", rest)
    if scheme == "vault":
        match = _VAULT.fullmatch(rest)
        if match:
            return SecretRef("vault", match.group(1), match.group(2))
    raise _inline_refused()


def is_reference(text: str) -> bool:
    """Whether ``text`` is a secret reference (and so not an inline secret)."""
    try:
        parse_reference(text)
    except ValueError:
        return False
    return True


def _validate(value: object) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise _inline_refused()
    return parse_reference(value)


#: A settings field that holds a secret: only a reference is accepted.
SecretReference = Annotated[
    SecretRef, BeforeValidator(_validate), PlainSerializer(str, return_type=str)
]

VaultRead = Callable[[str, str], str]


class SecretStore:
    """Resolves references; the environment and the Vault reader are injected."""

    def __init__(
        self, environ: Mapping[str, str], *, vault: VaultRead | None = None
    ) -> None:
        self._environ = environ
        self._vault = vault

    def resolve(self, reference: SecretRef | str, *, setting: str) -> Secret:
        """The secret behind ``reference``; ``setting`` names it in errors."""
        ref = reference if isinstance(reference, SecretRef) else _validate(reference)
        value = self._lookup(ref, setting)
        if not value.strip():
            raise ConfigError(f"{setting}: the secret at {ref} is empty")
        return Secret(value, source=str(ref))

    def _lookup(self, ref: SecretRef, setting: str) -> str:
        if ref.scheme == "env":
            value = self._environ.get(ref.target)
            if value is None:
                raise ConfigError(
                    f"{setting}: environment variable {ref.target} is not set"
                )
            return value
        if ref.scheme == "file":
            # One trailing newline is the file's, not the secret's (echo > file).
            text = read_owner_only(Path(ref.target), f"{setting}: secret file")
            return text.removesuffix("\n").removesuffix("\r")
        if self._vault is None or ref.field is None:
            raise ConfigError(
                f"{setting}: {ref} needs a [secrets.vault] section in the settings"
            )
        return self._vault(ref.target, ref.field)
