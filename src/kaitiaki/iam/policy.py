"""Admin-plane access decisions: explicit Cedar policies through ``cedarpy``.

Policies come from the shipped least-privilege file or from an operator's
owner-only file, and are validated against the admin schema when loaded; a
policy that does not validate stops start-up. A decision is a pure function
of the principal, action, resource and the request's context.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cedarpy

from kaitiaki.errors import ConfigError
from kaitiaki.iam.files import read_owner_only

__all__ = ["ADMIN_ACTIONS", "AdminPolicies", "Decision", "load_policies"]

#: Each admin action and the resource type it applies to.
ADMIN_ACTIONS = {
    "view": "Config",
    "reload": "Config",
    "rotate": "Key",
    "suspend": "Client",
    "resume": "Client",
    "query": "Audit",
    "reveal": "Secret",
}


def _packaged(name: str) -> str:
    return resources.files("kaitiaki.iam").joinpath(name).read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy decision; ``reasons`` are the ids of the deciding policies."""

    allowed: bool
    reasons: tuple[str, ...]
    errors: tuple[str, ...] = ()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class AdminPolicies:
    """A validated Cedar policy set and the source it came from."""

    def __init__(self, text: str, *, source: str) -> None:
        try:
            result = cedarpy.validate_policies(text, _packaged(_SCHEMA))
        except ValueError as exc:
            raise ConfigError(f"{source}: not valid Cedar: {exc}") from exc
        if not result.validation_passed:
            problems = "; ".join(error.error for error in result.errors)
            raise ConfigError(
                f"{source}: not valid Cedar for the admin schema: {problems}"
            )
        self.text = text
        self.source = source

    def decide(
        self, *, client_id: str, scopes: frozenset[str], action: str, target: str
    ) -> Decision:
        """Whether ``client_id`` holding ``scopes`` may ``action`` on ``target``."""
        resource_type = ADMIN_ACTIONS.get(action)
        if resource_type is None:
            return Decision(False, (), (f"unknown action {action}",))
        request = {
            "principal": f'Kaitiaki::Principal::"{_quote(client_id)}"',
            "action": f'Kaitiaki::Action::"{action}"',
            "resource": f'Kaitiaki::{resource_type}::"{_quote(target)}"',
            "context": {
                "scopes": sorted(scopes),
                "client_id": client_id,
                "target": target,
                "address": "",
            },
        }
        result = cedarpy.is_authorized(request, self.text, [])
        diagnostics = result.diagnostics
        return Decision(
            bool(result.allowed),
            tuple(diagnostics.reasons),
            tuple(str(error) for error in diagnostics.errors),
        )


_SCHEMA = "admin-schema.cedarschema"
_POLICY = "admin-policy.cedar"


def load_policies(policy_file: str | None) -> AdminPolicies:
    """The operator's owner-only policy file, or the shipped defaults."""
    if policy_file is None:
        return AdminPolicies(_packaged(_POLICY), source="shipped admin policies")
    path = Path(policy_file)
    return AdminPolicies(read_owner_only(path, "admin policy file"), source=str(path))
