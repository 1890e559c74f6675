"""A small clustered graph and a domain Recommender wired for tests (fake clock, hooks)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recserver.config import RecServerConfig, config_from_document
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.walk import warm_up
from recserver.service.fallback import FallbackChain, FallbackTier, PopularTier
from recserver.service.recommender import Recommender


class FakeClock:
    """A perf_counter stand-in that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000.0


def clustered_graph(n_users: int = 60, items_per_cluster: int = 12, seed: int = 0) -> LiveGraph:
    """Two taste clusters: users u<even> buy 'a*' items, users u<odd> buy 'b*' items."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        prefix = "a" if u % 2 == 0 else "b"
        for item in rng.choice(items_per_cluster, size=5, replace=False):
            events.append(Event(f"u{u}", f"{prefix}{item}", "purchase", 1, 1_000.0 + u))
    # A globally popular item bought by everyone makes the popular tier predictable.
    events += [Event(f"u{u}", "hit", "purchase", 1, 900.0) for u in range(n_users)]
    cfg = GraphConfig(
        event_weights=EventWeightsConfig(half_life_days=None),
        prune=PruneConfig(hub_percentile=None),
    )
    live = LiveGraph(cfg)
    live.ingest(EventColumns.from_events(events))
    live.publish()
    return live


def surface_config(**home: object) -> RecServerConfig:
    body = {"budget_ms": 50, "sla_p99_ms": 80, "k_default": 5, "k_max": 20,
            "walk": {"steps": 20_000, "batch_steps": 256, "n_p": 0}}
    body.update(home)
    return config_from_document({
        "surfaces": {"home": body, "item_page": {**body, "budget_ms": 30}},
    })


def make_recommender(
    live: LiveGraph,
    config: RecServerConfig,
    *,
    clock: Callable[[], float] | None = None,
    walk_hook: Callable[[int], None] | None = None,
    extra_tiers: dict[str, FallbackTier] | None = None,
) -> Recommender:
    warm_up()  # as the App does before SERVING: JIT time must not eat a test's budget
    popular = PopularTier()
    popular.refresh(live.current)
    live.on_publish.append(popular.refresh)
    tiers: dict[str, FallbackTier] = {"popular": popular, **(extra_tiers or {})}
    kwargs = {"clock": clock} if clock is not None else {}
    return Recommender(live, lambda: config, FallbackChain(tiers), walk_hook=walk_hook, **kwargs)
