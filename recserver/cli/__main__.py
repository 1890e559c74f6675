"""``python -m recserver.cli``: the full command line (``recserver.entry`` is the console one)."""

from recserver.cli import main

raise SystemExit(main())
