"""Micro- and node benchmarks, each module one command (``python -m load.benchmarks.walk`` and so
on), and the helpers only they use (the node harness, the hub log, the bulk-work probes)."""
