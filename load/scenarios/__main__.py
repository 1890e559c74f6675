"""``python -m load.scenarios NAME``: the load scenarios (``load.scenarios.cli``)."""

from load.scenarios.cli import main

raise SystemExit(main())
