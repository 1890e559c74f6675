"""What the hot path needs from a graph: the current snapshot and a publish hook.

A ``LiveGraph`` (the builder, or one process doing everything) and a ``MappedGraph`` (a serving
worker mapping the builder's files) both fit, so the recommender, the fallback tiers and the
metrics never know which role they run in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from recserver.graph.snapshot import GraphSnapshot


class SnapshotSource(Protocol):
    @property
    def ready(self) -> bool:
        """True once a snapshot can be read."""
        ...

    @property
    def current(self) -> GraphSnapshot:
        """The newest snapshot (raises before the first)."""
        ...

    on_publish: list[Callable[[GraphSnapshot], None]]
