"""``python -m load.loadgen``: the open-loop load generator (``load.loadgen.cli``)."""

from load.loadgen.cli import main

raise SystemExit(main())
