"""Real-time ingest: the durable event log (file or Redis stream), tailing it into the graph,
``RecordEvents``, and checkpoints for restart recovery (see ``base`` for the design)."""
