"""Metrics of answer stability (``recserver.online.stability``).

``recserver_online_stability_overlap_ratio{surface}``: a histogram of overlap@k between two
consecutive answers to the same sampled user on the same surface when the user had no accepted
event in between. Its mean (``_sum / _count``) is how much of a list survives a refresh: 1.0
means users see the same items, a low value means lists reshuffle under them. Label: surface
only (a small fixed set), never a user or item id.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram

#: Overlap buckets: tenths, with the top ones finer (most answers keep most of their items).
OVERLAP_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


class StabilityMetrics:
    """Overlap of consecutive answers per surface."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self._overlap = Histogram(
            "recserver_online_stability_overlap_ratio", "Overlap@k of consecutive answers to "
            "the same sampled user on a surface, with no event of that user in between",
            ["surface"], buckets=OVERLAP_BUCKETS, registry=reg)
        self._children: dict[str, Any] = {}

    def overlap(self, surface: str, value: float) -> None:
        child = self._children.get(surface)
        if child is None:
            child = self._children.setdefault(surface, self._overlap.labels(surface))
        child.observe(value)
