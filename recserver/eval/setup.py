"""What every strategy answers from: the training graph of one config, its tiers, its ANN model.

The graph is built exactly as the server builds it (``LiveGraph`` ingest, a compacted publish,
the config's ``graph`` section: event weights, decay, pruning). The popular tier and the ANN
runtime are the serving ones; the ANN cache is the in-process LRU (precomputed results, with
compute on a miss), so ANN latencies are those of a Redis-less server, not of a Redis round trip.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from recserver.ann.runtime import AnnRuntime
from recserver.config import RecServerConfig, SurfaceConfig, config_from_document
from recserver.graph.events import EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.walk import warm_up
from recserver.service.fallback import FallbackChain, FallbackTier, PopularTier
from recserver.service.recommender import Recommender
from recserver.service.trending import TrendingTier, keep_trending

log = logging.getLogger(__name__)

CHUNK = 2_000_000  # events per ingest call, as in bootstrap


class EvalSetup:
    """The training graph of ``config`` and the serving parts built on it."""

    def __init__(self, config: RecServerConfig, train: EventColumns) -> None:
        started = time.perf_counter()
        self.config = config
        self.graph = LiveGraph(config.graph)
        keep_trending(self.graph, config)
        n = len(train)
        for lo in range(0, max(n, 1), CHUNK):
            mask = np.zeros(n, dtype=bool)
            mask[lo : lo + CHUNK] = True
            self.graph.ingest(train.take(mask) if n > CHUNK else train)
            if n <= CHUNK:
                break
        self.graph.publish(compact=True)
        self.popular = PopularTier()
        self.popular.refresh(self.graph.current)
        self.trending = TrendingTier(lambda: config)
        self.trending.refresh(self.graph.current)
        self.build_seconds = time.perf_counter() - started
        self._ann: AnnRuntime | None = None
        warm_up()

    @property
    def snapshot(self) -> GraphSnapshot:
        return self.graph.current

    def surface(self, name: str) -> SurfaceConfig:
        surface = self.config.surface(name)
        if surface is None:
            known = ", ".join(sorted(self.config.surfaces))
            raise ValueError(f"unknown surface {name!r}; the config has: {known}")
        return surface

    def ann(self) -> AnnRuntime:
        """The ANN runtime on the in-process LRU cache, built on first use."""
        if self._ann is None:
            cfg = self.config.ann.model_copy(update={"redis_url": None})
            runtime = AnnRuntime(cfg, self.graph)
            report = runtime.build_now()
            log.info("ann model built: %s", report.summary().splitlines()[0])
            self._ann = runtime
        return self._ann

    def tiers(self, names: list[str]) -> dict[str, FallbackTier]:
        tiers: dict[str, FallbackTier] = {"popular": self.popular}
        if "ann" in names:
            tiers["ann"] = self.ann().tier
        if "trending" in names:
            tiers["trending"] = self.trending
        return tiers

    def recommender(self, config: RecServerConfig, surface: str) -> Recommender:
        """The serving pipeline (``Recommender.recommend``) on this graph with ``config``."""
        tiers = self.tiers(list(config.surfaces[surface].fallback.tiers))
        return Recommender(self.graph, lambda: config, FallbackChain(tiers))

    def close(self) -> None:
        if self._ann is not None:
            self._ann.stop()


def with_surface(
    config: RecServerConfig, surface: str, *, budget_ms: float | None = None,
    walk: dict[str, float | int] | None = None,
) -> RecServerConfig:
    """A copy of ``config`` whose ``surface`` has another budget and walk settings.

    The SLA is raised to the budget when the budget would exceed it (validation demands
    ``sla_p99_ms >= budget_ms``); ``math.inf`` means "no deadline" (the largest budget allowed).
    """
    document = config.model_dump(mode="python")
    document["ann"]["redis_url"] = None
    body = document["surfaces"][surface]
    if budget_ms is not None:
        budget = 60_000.0 if math.isinf(budget_ms) else float(budget_ms)
        body["budget_ms"] = budget
        body["sla_p99_ms"] = max(body["sla_p99_ms"], budget)
    if walk:
        body["walk"].update(walk)
    return config_from_document(document, "<evaluation>")
