"""``gateway.workers > 1``: what several processes on one socket cannot offer
is refused at start, with the setting named, before any worker runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kaitiaki.cli.serve import _serve_workers
from kaitiaki.errors import KaitiakiError
from kaitiaki.settings import parse_settings
from tests.gateway.conftest import gateway_toml


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("[admin]\nenabled = true\nport = 0\n", "[admin] enabled"),
        ("[metrics]\nenabled = true\nport = 0\n", "[metrics] enabled"),
    ],
)
def test_workers_refuse_what_one_process_must_hold(
    tmp_path: Path, extra: str, named: str
) -> None:
    toml = gateway_toml("https://issuer.example", "http://127.0.0.1:9", tmp_path)
    toml = toml.replace("[gateway]\n", "[gateway]\nworkers = 2\n", 1) + extra
    settings = parse_settings(toml, source="test")
    assert settings.gateway.workers == 2
    with pytest.raises(KaitiakiError, match=named.replace("[", r"\[")):
        _serve_workers(argparse.Namespace(config=None), settings)
