"""Recency in the walk: a brand-new item reached within one publish beats an old heavy one on a
churn surface (short recency half-life), not on a retail surface (long or no half-life)."""

from __future__ import annotations

import time

import numpy as np

from recserver.config import RecServerConfig, config_from_document
from recserver.graph.config import GraphConfig, WalkConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.recency import RECENCY_FLOOR, recency_weights
from recserver.service.trending import keep_trending, trending_half_lives
from recserver.service.types import RecommendQuery
from tests.service_fixtures import make_recommender

T = 1.7e9
WALK = {"steps": 20_000, "batch_steps": 256, "n_p": 0}


def config() -> RecServerConfig:
    """``news`` walks with a 30-minute recency, ``shop`` with a week's, ``plain`` with none."""
    body = {"budget_ms": 5_000, "sla_p99_ms": 5_000, "k_default": 3}
    return config_from_document({"server": {"enforce_budgets": False}, "surfaces": {
        "news": {**body, "walk": {**WALK, "recency_half_life_minutes": 30}},
        "shop": {**body, "walk": {**WALK, "recency_half_life_minutes": 10_080}},
        "plain": {**body, "walk": WALK},
    }})


def clicks(pairs: list[tuple[str, str, float]]) -> EventColumns:
    return EventColumns.from_events([Event(u, i, "click", 1.0, t) for u, i, t in pairs])


def history() -> EventColumns:
    """Two days ago 40 readers read ``seed`` and ``old`` (the heavy item); ``me`` read ``seed``
    too and is asked. Nothing is newer than that yet."""
    day2 = T - 2 * 86_400.0
    pairs = [(f"r{n}", item, day2 + n) for n in range(40) for item in ("seed", "old")]
    return clicks([*pairs, ("me", "seed", day2 + 50)])


def ask(graph: LiveGraph, surface: str) -> list[str]:
    rec = make_recommender(graph, config())
    query = RecommendQuery(user_id="me", surface=surface, k=3, request_id=f"ask-{surface}")
    answer = rec.recommend(query, arrival=time.perf_counter(), client_remaining_s=None)
    return [item.item_id for item in answer.items]


def test_a_brand_new_item_leads_within_one_publish_on_a_churn_surface_only() -> None:
    graph = LiveGraph(GraphConfig())
    keep_trending(graph, config())  # the walk's half-lives are counted though no tier lists them
    try:
        graph.ingest(history())
        graph.publish(compact=True)
        assert ask(graph, "news")[0] == "old"  # nothing fresh yet: the walk's order stands
        # Minutes ago, 4 readers of ``seed`` read the brand-new ``fresh``: one publish later...
        graph.ingest(clicks([(f"r{n}", "fresh", T - 300.0 + n) for n in range(4)]))
        graph.publish()
        assert ask(graph, "news")[0] == "fresh"  # ...it leads the churn surface
        for surface in ("shop", "plain"):  # a long half-life, or none: the heavy item leads
            answer = ask(graph, surface)
            assert answer[0] == "old" and "fresh" in answer
    finally:
        graph.stop()


def test_the_builder_counts_the_walk_half_lives_and_weights_saturate() -> None:
    assert trending_half_lives(config()) == (1_800.0, 604_800.0)
    graph = LiveGraph(GraphConfig())
    keep_trending(graph, config())
    try:
        graph.ingest(clicks([("a", "one", T), ("b", "many", T)] +
                            [(f"m{n}", "many", T - n) for n in range(20)] +
                            [("c", "dead", T - 86_400.0)]))
        snap = graph.publish(compact=True)
        ids = snap.items.lookup_many(["one", "many", "dead"]).astype(np.int32)
        news = recency_weights(snap, ids, WalkConfig(recency_half_life_minutes=30))
        assert news is not None
        assert 0.85 < news[0] < news[1] < 1.0 + RECENCY_FLOOR  # one event now is nearly live
        assert news[2] < 2 * RECENCY_FLOOR  # read a day ago: as good as dead on a churn surface
        assert recency_weights(snap, ids, WalkConfig()) is None  # no recency: no weights
        # A half-life the builder does not count (yet) leaves the walk as it was.
        assert recency_weights(snap, ids, WalkConfig(recency_half_life_minutes=7)) is None
    finally:
        graph.stop()
