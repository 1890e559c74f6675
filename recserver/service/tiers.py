"""The fallback tiers a surface may name, built for one process (``node.wiring.Answering``);
kept apart from the writer's parts (bootstrap, ingest, checkpoints), so a serving worker builds
its tiers without importing the code that writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from recserver.service.fallback import FallbackTier, PopularTier
from recserver.service.trending import TrendingTier

if TYPE_CHECKING:
    from recserver.ann.runtime import AnnRuntime
    from recserver.config import RecServerConfig
    from recserver.graph.source import SnapshotSource


def build_tiers(graph: SnapshotSource, ann: AnnRuntime | None = None,
                config: Callable[[], RecServerConfig] | None = None) -> dict[str, FallbackTier]:
    """The fallback tiers by the names surfaces use in ``fallback.tiers`` (explicit mapping);
    ``config`` (the current config) gives each surface its trending half-life."""
    popular = PopularTier()
    graph.on_publish.append(popular.refresh)
    tiers: dict[str, FallbackTier] = {"popular": popular}
    if config is not None:
        trending = TrendingTier(config)
        graph.on_publish.append(trending.refresh)
        tiers["trending"] = trending
    if ann is not None:
        tiers["ann"] = ann.tier
    return tiers


def uses_ann(config: RecServerConfig) -> bool:
    """Whether any surface lists the ANN tier (else no process needs ANN results)."""
    return any("ann" in surface.fallback.tiers for surface in config.surfaces.values())
