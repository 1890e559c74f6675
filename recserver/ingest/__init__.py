"""Real-time ingest: ``RecordEvents`` (validate, dedup, append), tailing the event log into the
graph, checkpoints and restart recovery, and the ``ingest`` config section. The log's storage
backends (file segments, Redis stream) and record format are in ``recserver.eventlog``."""
