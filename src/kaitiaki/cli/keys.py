"""``kaitiaki keys``: list the key rings Kaitiaki holds (creating missing
keys) and rotate one."""

from __future__ import annotations

import argparse
from typing import Any

from kaitiaki.cli.config import _settings

__all__ = ["cmd_keys"]


def cmd_keys(args: argparse.Namespace) -> int:
    import time

    from kaitiaki.iam.rotation import key_listing, rotate_key

    settings = _settings(args)
    if args.keys_command == "rotate":
        rotation = rotate_key(args.kind, settings, int(time.time()))
        until = (
            "keeps verifying the checkpoints it signed"
            if rotation.verify_until == 0
            else "verifies until "
            + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rotation.verify_until))
        )
        print(
            f"rotated {rotation.kind}: new key {rotation.new_kid}; "
            f"{rotation.retired_kid or 'no previous key'} {until}"
        )
        return 0
    for kind, kid, path in key_listing(settings):
        print(f"{kind:18} {kid}  {path}")
    return 0


def _keys_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from kaitiaki.iam.keyring import KEY_KINDS

    keys = commands.add_parser("keys", help="the keys Kaitiaki holds", parents=[common])
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser(
        "list", help="generate missing keys; show the current ones", parents=[common]
    )
    rotate = keys_commands.add_parser(
        "rotate",
        help="new current key; the old one verifies for the overlap",
        parents=[common],
    )
    rotate.add_argument("kind", choices=KEY_KINDS)
