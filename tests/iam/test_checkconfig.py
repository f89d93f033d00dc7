"""``kaitiaki check-config``: each finding, and the exit status CI relies on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kaitiaki.cli import main
from kaitiaki.iam.checkconfig import check_config

ROOT = Path(__file__).parents[2]
VAULT_INLINE = (
    '[secrets.vault]\nurl = "http://127.0.0.1:8200"\ntoken = "hunter2-hunter2"\n'
)
BASE = """
[gateway]
upstream = "http://127.0.0.1:9/fhir"
[auth]
issuer = "https://issuer.kaitiaki.nz"
audience = "https://gw.kaitiaki.nz/fhir"
"""


def _write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "kaitiaki.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def _keys(path: Path) -> set[tuple[str, str]]:
    return {(finding.level, finding.key) for finding in check_config(path)}


def test_check_config_clean_file_passes(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)

    assert check_config(path) == []
    assert main(["check-config", str(path)]) == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            VAULT_INLINE,
            ("error", "secrets.vault.token"),
        ),
        (
            '[refapi]\ndatabase_url = "postgresql://app:pw123456@db/fhir"\n',
            ("error", "refapi.database_url"),
        ),
        (
            '[upstream_auth]\nclient_secret = "s3cr3t"\n',
            ("error", "upstream_auth.client_secret"),
        ),
        ('[admin]\nenabled = true\nhost = "0.0.0.0"\n', ("error", "admin")),
        ('[cors]\nallow_origins = ["*"]\n', ("error", "cors.allow_origins")),
        ('[[routes]]\npath = "/fhir/Patient"\n', ("error", "routes[0]")),
        ("[introspection]\nfail_open = true\n", ("warning", "introspection.fail_open")),
        (
            '[limits_store]\non_failure = "allow"\n',
            ("warning", "limits_store.on_failure"),
        ),
    ],
)
def test_check_config_reports(
    tmp_path: Path, extra: str, expected: tuple[str, str]
) -> None:
    path = _write(tmp_path, BASE + extra)

    assert expected in _keys(path)
    assert main(["check-config", str(path)]) == 1


@pytest.mark.parametrize(
    ("auth", "key"),
    [
        ('algorithms = ["ES256", "RS256"]', "auth.algorithms"),
        ("allow_rs256 = true", "auth.allow_rs256"),
        ("max_token_lifetime_seconds = 86400", "auth.max_token_lifetime_seconds"),
        ("require_at_jwt_typ = false", "auth.require_at_jwt_typ"),
    ],
)
def test_check_config_weak_issuer_settings_warn(
    tmp_path: Path, auth: str, key: str
) -> None:
    path = _write(tmp_path, BASE.replace("[auth]\n", f"[auth]\n{auth}\n"))

    assert ("warning", key) in _keys(path)
    assert main(["check-config", str(path)]) == 0
    assert main(["check-config", "--strict", str(path)]) == 1


def test_check_config_missing_audience_and_plain_http_issuer(tmp_path: Path) -> None:
    no_audience = _write(
        tmp_path, BASE.replace('audience = "https://gw.kaitiaki.nz/fhir"\n', "")
    )
    assert ("error", "auth.audience") in _keys(no_audience)

    http = _write(tmp_path, BASE.replace("https://issuer", "http://issuer"))
    assert ("error", "auth.issuer") in _keys(http)


def test_check_config_loose_modes(tmp_path: Path) -> None:
    key = tmp_path / "client.jwk"
    key.write_text("{}")
    key.chmod(0o644)
    text = BASE + (
        f'[dev_issuer]\naudience = "a"\n[[dev_issuer.clients]]\nclient_id = "c"\n'
        f'scope = "system/*.rs"\nkey_path = "{key}"\n'
    )
    path = _write(tmp_path, text, mode=0o644)

    keys = _keys(path)
    assert ("error", "(settings file)") in keys
    assert ("error", "dev_issuer.clients[0].key_path") in keys


def test_check_config_example_file_only_flags_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "kaitiaki.toml"
    shutil.copy(ROOT / "docs/kaitiaki.example.toml", path)
    path.chmod(0o600)

    findings = check_config(path)

    assert findings and {finding.level for finding in findings} == {"example"}
    assert main(["check-config", str(path)]) == 1
    assert main(["check-config", "--allow-examples", str(path)]) == 0
