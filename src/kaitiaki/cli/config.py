"""The settings a command runs with: the file ``--config`` names, or the
embedded demo settings."""

from __future__ import annotations

import argparse

from kaitiaki.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)
