"""The throttle settings shown in the docs are valid settings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from kaitiaki.limits import LimitSettings
from kaitiaki.settings import parse_settings

DOCS = Path(__file__).parents[2] / "docs"


def test_example_settings_file_loads() -> None:
    example = DOCS / "kaitiaki.example.toml"
    settings = parse_settings(example.read_text("utf-8"), source=str(example))
    assert settings.limits.clients["nightly-sync"] == "bronze"
    assert settings.limits.routes["bulk"].concurrency == 2


def test_configuration_page_limits_examples_validate() -> None:
    text = (DOCS / "configuration.md").read_text("utf-8")
    blocks = [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", text, re.S)]
    limits = [block["limits"] for block in blocks if "limits" in block]
    assert limits
    for section in limits:
        LimitSettings.model_validate(section)
