"""The six load scenarios (``python -m load.scenarios NAME``) on pinned ``recserver serve``
processes, and the report that writes their tables into ``docs/performance.md``."""
