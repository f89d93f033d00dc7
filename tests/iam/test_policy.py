"""Cedar admin policies: shipped least privilege, operator files, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaitiaki.errors import ConfigError
from kaitiaki.iam.policy import ADMIN_ACTIONS, load_policies

SCOPES = {
    "view": "admin:config.read",
    "reload": "admin:config.reload",
    "rotate": "admin:keys.rotate",
    "suspend": "admin:clients.suspend",
    "resume": "admin:clients.suspend",
    "query": "admin:audit.read",
}


@pytest.mark.parametrize("action", sorted(SCOPES))
def test_shipped_policy_needs_each_actions_own_scope(action: str) -> None:
    policies = load_policies(None)
    others = frozenset(scope for scope in SCOPES.values() if scope != SCOPES[action])

    def allowed(scopes: frozenset[str]) -> bool:
        return policies.decide(
            client_id="ops", scopes=scopes, action=action, target="t"
        ).allowed

    assert allowed(frozenset({SCOPES[action]}))
    assert not allowed(others)
    assert not allowed(frozenset({"system/*.cruds", "admin", "admin:*"}))


def test_shipped_policy_never_reveals_secrets_nor_self_suspension() -> None:
    policies = load_policies(None)
    everything = frozenset(SCOPES.values())

    reveal = policies.decide(
        client_id="ops", scopes=everything, action="reveal", target="x"
    )
    own = policies.decide(
        client_id="ops", scopes=everything, action="suspend", target="ops"
    )
    unknown = policies.decide(
        client_id="ops", scopes=everything, action="delete", target="x"
    )

    assert not reveal.allowed and not own.allowed and not unknown.allowed
    assert set(ADMIN_ACTIONS) >= set(SCOPES)


def _policy_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "admin-policy.cedar"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_operator_policy_file_decides(tmp_path: Path) -> None:
    text = (
        'permit (principal == Kaitiaki::Principal::"auditor", '
        'action == Kaitiaki::Action::"query", resource is Kaitiaki::Audit);'
    )
    policies = load_policies(str(_policy_file(tmp_path, text)))

    auditor = policies.decide(
        client_id="auditor", scopes=frozenset(), action="query", target="events"
    )
    other = policies.decide(
        client_id="ops", scopes=frozenset(), action="query", target="events"
    )
    assert auditor.allowed and not other.allowed


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ("permit (principal, action, resource);", 0o644, "group or others"),
        ("permit (principal, action", 0o600, "parse error"),
        (
            'permit (principal, action == Kaitiaki::Action::"drop", resource);',
            0o600,
            "admin schema",
        ),
    ],
)
def test_operator_policy_file_refused(
    tmp_path: Path, text: str, mode: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_policies(str(_policy_file(tmp_path, text, mode)))
