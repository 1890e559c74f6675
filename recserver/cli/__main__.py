"""``python -m recserver.cli``: the full command line (as the ``recserver`` console script)."""

from recserver.cli import main

raise SystemExit(main())
