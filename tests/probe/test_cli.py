"""``kaitiaki probe`` from the command line: demo profile, reports, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.probe.conftest import Stack

from kaitiaki.cli import main


def test_probe_cli_demo_writes_every_report(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with stack.gateway() as base:
        status = main(
            [
                "--config",
                str(stack.root / "kaitiaki.toml"),
                "probe",
                base,
                "--demo",
                "--only",
                "authn.",
                "--output",
                str(out),
            ]
        )
    assert status == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "kaitiaki-probe.html",
        "kaitiaki-probe.json",
        "kaitiaki-probe.junit.xml",
        "kaitiaki-probe.sarif",
    ]
    data = json.loads((out / "kaitiaki-probe.json").read_text())
    assert data["counts"]["fail"] == 0


def test_probe_cli_fails_on_threshold(stack: Stack, tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    reader = next(c for c in stack.settings.dev_issuer.clients)  # type: ignore[union-attr]
    profile.write_text(
        f'[auth]\nissuer = "{stack.issuer}"\n'
        f'[clients.reader]\nclient_id = "{reader.client_id}"\n'
        f'key_file = "{reader.key_path}"\n'
    )
    with stack.gateway("sets-cookie") as base:
        args = ["probe", base, "--profile", str(profile), "--only", "zt.no-set-cookie"]
        assert main(args) == 1
        assert main([*args, "--fail-on", "critical"]) == 0


@pytest.mark.parametrize("extra", [[], ["--demo", "--profile", "x.toml"]])
def test_probe_cli_needs_one_profile(extra: list[str]) -> None:
    assert main(["probe", "http://127.0.0.1:9/fhir", *extra]) == 2
