"""Every degraded answer says why: a walk that finds nothing new is reported, not silent."""

from __future__ import annotations

import time

from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.service.types import RecommendQuery
from tests.service_fixtures import make_recommender, surface_config


def island_graph() -> LiveGraph:
    """'solo' bought only 'island', which nobody else bought; everyone else shares 'hit'."""
    events = [Event("solo", "island", "purchase", 1, 1_000.0)]
    events += [Event(f"u{u}", item, "purchase", 1, 1_000.0 + u)
               for u in range(20) for item in ("hit", f"x{u % 4}")]
    live = LiveGraph(GraphConfig(event_weights=EventWeightsConfig(half_life_days=None),
                                 prune=PruneConfig(hub_percentile=None)))
    live.ingest(EventColumns.from_events(events))
    live.publish()
    return live


def test_walk_with_no_new_candidates_says_few_candidates() -> None:
    live = island_graph()
    rec = make_recommender(live, surface_config())
    query = RecommendQuery(user_id="solo", surface="home", k=3)
    resp = rec.recommend(query, arrival=time.perf_counter(), client_remaining_s=None)
    # The walk only reaches 'island', which solo already has: every item comes from the fallback.
    assert resp.source == "popular" and resp.degraded
    assert resp.degraded_reasons == ["few_candidates"]
    assert "island" not in [item.item_id for item in resp.items]
