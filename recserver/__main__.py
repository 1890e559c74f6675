"""``python -m recserver``: the command line (the supervisor starts its roles this way)."""

from recserver.cli import main

raise SystemExit(main())
