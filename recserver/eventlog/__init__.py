"""The durable event log: its interface (``base``), record format (``codec``) and storage
backends (file segments, Redis stream), chosen by ``registry``. What reads and writes it is in
``recserver.ingest``."""
