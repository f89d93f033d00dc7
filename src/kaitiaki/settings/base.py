"""What every settings section shares: frozen models that refuse unknown keys,
and the field types and checks that more than one section uses."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Port", "RateText"]

Port = Annotated[int, Field(ge=0, le=65535)]
RateText = Annotated[str, Field(pattern=r"^\d+\s*(/|per)\s*\d*\s*[a-z]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for text in value:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a CIDR network like 10.0.0.0/8") from exc
    return value
