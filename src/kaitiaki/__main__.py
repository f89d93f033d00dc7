"""``python -m kaitiaki``: the same as the ``kaitiaki`` command."""

from kaitiaki.cli import main

raise SystemExit(main())
