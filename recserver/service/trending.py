"""The ``trending`` fallback tier: the items with the most recent events, per surface.

The builder keeps per-item event counts decayed with each half-life a surface names
(``surfaces.<name>.trending.half_life_minutes``) and publishes them with every snapshot, read at
the snapshot's newest event (``recserver.graph.trending``). This tier ranks each array once per
publish, like ``popular``; a request takes its surface's list. A category filter ranks the
category's own items by the same counts (``RankedList``), so a trending list per category costs
nothing to keep. Unlike ``popular`` (all-time edge weight, decayed over weeks), an item with a
burst of clicks in the last minutes outranks an old hit: the answer for logs where items churn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from recserver.graph.recency import recency_half_life_s
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.trending import TrendingCounters, half_life_key
from recserver.service.fallback import (
    FallbackRequest,
    Float32Array,
    Int32Array,
    RankedList,
    TierNotReady,
)
from recserver.service.types import Source

if TYPE_CHECKING:  # a worker ranks the counts; only the writer side imports the live graph
    from recserver.config import RecServerConfig
    from recserver.graph.live import LiveGraph

TIER = "trending"


def half_life_s(config: RecServerConfig, surface: str) -> float:
    """The trending half-life of ``surface``, in seconds."""
    return config.surfaces[surface].trending.half_life_minutes * 60.0


def trending_half_lives(config: RecServerConfig) -> tuple[float, ...]:
    """The half-lives (seconds) to count, distinct, sorted: those of the surfaces that list the
    trending tier, and the walk recency half-lives (``recserver.graph.recency``), which weight
    candidates by the same counts."""
    tiers = {half_life_s(config, name) for name, surface in config.surfaces.items()
             if TIER in surface.fallback.tiers}
    walks = {half_life for surface in config.surfaces.values()
             if (half_life := recency_half_life_s(surface.walk)) is not None}
    return tuple(sorted(tiers | walks))


def keep_trending(graph: LiveGraph, config: RecServerConfig) -> None:
    """Make ``graph`` (the one that ingests: a builder, a single process, replay) count events
    for every half-life ``config``'s surfaces use. Called at start, before the first ingest,
    and on each config reload: a half-life first named by a reload counts from then on."""
    wanted = trending_half_lives(config)
    if not wanted:
        return
    if graph.trending is None:
        graph.trending = TrendingCounters(wanted)
    else:
        graph.trending.ensure(wanted)


class TrendingTier:
    """Items by decayed recent event counts, the list of the request's surface."""

    name = TIER
    source: Source = "trending"

    def __init__(self, config: Callable[[], RecServerConfig], size: int = 2_000) -> None:
        self._config = config
        self._size = size
        self._lists: dict[str, RankedList] = {}
        self._lock = threading.Lock()

    def refresh(self, snapshot: GraphSnapshot) -> None:
        """Rank every half-life's counts of ``snapshot`` (beside the hot path, on publish)."""
        lists = {key: RankedList(np.asarray(counts, dtype=np.float64), self._size,
                                 positive_only=True)
                 for key, counts in snapshot.trending.items()}
        with self._lock:
            self._lists = lists

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        key = half_life_key(half_life_s(self._config(), request.surface))
        ranked = self._lists.get(key)
        if ranked is None:  # the builder keeps no counts for this half-life (yet)
            raise TierNotReady(f"no trending counts for a half-life of {key} s")
        return ranked.fetch(request)
