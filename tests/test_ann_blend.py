"""Blending walk and fallback candidates: per-surface policy, sources kept, no duplicates."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recserver.config import BlendConfig, config_from_document
from recserver.graph.walk import WalkResult
from recserver.service.fallback import ChainResult
from recserver.service.merge import merge_answer
from recserver.service.types import RecommendQuery
from tests.ann_helpers import TEST_ANN, make_runtime, synthetic_live
from tests.graph_factory import build_snapshot
from tests.service_fixtures import make_recommender

SNAP = build_snapshot([0], [0], [1.0], n_users=1, n_items=20)


def walk(items: list[int], scores: list[float], coverage: float = 0.25,
         stopped_by: str = "deadline") -> WalkResult:
    return WalkResult(items=np.array(items, np.int32), scores=np.array(scores, np.float32),
                      steps_done=int(coverage * 1000), steps_planned=1000, coverage=coverage,
                      stopped_by=stopped_by)  # type: ignore[arg-type]


def chain(*entries: tuple[int, float, str]) -> ChainResult:
    return ChainResult(items=[e[0] for e in entries], scores=[e[1] for e in entries],
                       sources=[e[2] for e in entries], errors=[], seconds=0.0)  # type: ignore[misc]


def ids(names: list[str]) -> list[int]:
    return [int(n[1:]) for n in names]


@pytest.mark.parametrize("mode", ["slots", "score"])
def test_sources_kept_duplicates_removed_seen_excluded(mode: str) -> None:
    w = walk([1, 2, 3, 4], [1.0, 0.8, 0.5, 0.2])
    c = chain((2, 0.9, "ann_fallback"), (5, 0.8, "ann_fallback"), (6, 0.7, "ann_fallback"),
              (7, 1.0, "popular"), (8, 0.9, "popular"))
    answer = merge_answer(SNAP, w, c, 6, 0.5, policy=BlendConfig(mode=mode),
                          exclude=np.array([3, 6], np.int32))
    got = ids([item.item_id for item in answer.items])
    assert len(got) == len(set(got)) == 6
    assert not {3, 6} & set(got)  # seen/excluded items never come back, whatever the tier says
    sources = {int(item.item_id[1:]): item.source for item in answer.items}
    assert sources[1] == "graph_partial" and sources[5] == "ann_fallback"
    assert all(sources[i] == "popular" for i in (7, 8) if i in sources)
    assert answer.source == "blended"


def test_slots_policy_gives_the_walk_a_share_by_coverage() -> None:
    w = walk([1, 2, 3, 4], [1.0, 0.9, 0.8, 0.7], coverage=0.25)  # half of topup 0.5: 2 of 4
    c = chain((10, 1.0, "ann_fallback"), (11, 0.9, "ann_fallback"), (12, 0.1, "popular"))
    answer = merge_answer(SNAP, w, c, 4, 0.5, policy=BlendConfig(mode="slots"))
    assert ids([i.item_id for i in answer.items]) == [1, 2, 10, 11]
    short = merge_answer(SNAP, w, chain((10, 1.0, "ann_fallback")), 4, 0.5)
    assert ids([i.item_id for i in short.items]) == [1, 2, 10, 3]  # the walk's rest fills in


def test_score_policy_ranks_by_normalised_blended_score() -> None:
    # 2 of 4 places by coverage: graph weight 0.5, ANN weight 0.5 * fallback_weight.
    w = walk([1, 2, 3], [10.0, 2.0, 1.0], coverage=0.25)  # normalised: 1.0, 0.2, 0.1
    c = chain((10, 0.9, "ann_fallback"), (11, 0.45, "ann_fallback"), (3, 0.9, "ann_fallback"),
              (12, 1.0, "popular"))
    answer = merge_answer(SNAP, w, c, 4, 0.5, policy=BlendConfig(mode="score"))
    got = [(int(i.item_id[1:]), round(i.score, 3), i.source) for i in answer.items]
    assert got == [
        (3, 0.55, "ann_fallback"),  # found by both: summed, keeps the larger contributor
        (1, 0.5, "graph_partial"),  # ties keep first-seen order: the walk's first
        (10, 0.5, "ann_fallback"),
        (11, 0.25, "ann_fallback"),
    ]
    heavier = merge_answer(SNAP, w, c, 4, 0.5,
                           policy=BlendConfig(mode="score", fallback_weight=3.0))
    assert ids([i.item_id for i in heavier.items])[:2] == [3, 10]


def test_score_policy_with_a_complete_walk_puts_the_graph_first() -> None:
    w = walk([1, 2], [1.0, 0.5], coverage=1.0, stopped_by="completed")
    c = chain((10, 1.0, "ann_fallback"), (11, 0.5, "popular"))
    answer = merge_answer(SNAP, w, c, 4, 0.5,
                          policy=BlendConfig(mode="score", pool_complete_walk=None))
    assert ids([i.item_id for i in answer.items]) == [1, 2, 10, 11]
    assert [i.source for i in answer.items] == ["graph", "graph", "ann_fallback", "popular"]


def test_a_complete_walk_is_pooled_with_ann_by_reciprocal_rank() -> None:
    w = walk([1, 2, 3], [1.0, 0.9, 0.1], coverage=1.0, stopped_by="completed")
    c = chain((3, 1.0, "ann_fallback"), (10, 0.99, "ann_fallback"), (11, 0.5, "popular"))
    answer = merge_answer(SNAP, w, c, 5, 0.5,
                          policy=BlendConfig(pool_complete_walk=0.5, rank_constant=1.0))
    got = [(int(i.item_id[1:]), round(i.score, 4), i.source) for i in answer.items]
    # share 0.5 each: walk ranks 1, 2, 3 give 0.5/2, 0.5/3, 0.5/4; ANN ranks 1, 2: 0.5/2, 0.5/3.
    assert got == [
        (3, round(0.5 / 4 + 0.5 / 2, 4), "ann_fallback"),  # found by both: summed
        (1, 0.25, "graph"),
        (2, round(0.5 / 3, 4), "graph"),
        (10, round(0.5 / 3, 4), "ann_fallback"),
        (11, 0.5, "popular"),  # popular only fills an empty place (its own score)
    ]
    assert answer.source == "blended"
    walk_only = merge_answer(SNAP, w, c, 5, 0.5, policy=BlendConfig(pool_complete_walk=1.0))
    assert ids([i.item_id for i in walk_only.items])[:3] == [1, 2, 3]


def test_recommender_blends_graph_and_ann_per_surface() -> None:
    live = synthetic_live()
    runtime = make_runtime(live, None)
    runtime.build_now()
    surface = {"budget_ms": 200, "sla_p99_ms": 300, "k_default": 10, "k_max": 50,
               "walk": {"steps": 20, "n_p": 0, "batch_steps": 64},
               "fallback": {"tiers": ["ann", "popular"], "topup_below_coverage": 1.0}}
    config = config_from_document({
        "surfaces": {"home": {**surface, "fallback": {**surface["fallback"],
                                                      "blend": {"mode": "score"}}},
                     "search": surface},
        "ann": TEST_ANN,
    })
    rec = make_recommender(live, config, extra_tiers={"ann": runtime.tier})
    snap = live.current
    user = next(u for u in range(snap.n_users) if snap.user_items(u)[0].shape[0] >= 3)
    seen = set(snap.items.names(snap.user_items(user)[0].tolist()))
    try:
        for surface_name in ("home", "search"):
            resp = rec.recommend(
                RecommendQuery(user_id=snap.users.name(user), surface=surface_name, k=10),
                arrival=time.perf_counter(), client_remaining_s=None)
            names = [item.item_id for item in resp.items]
            assert len(names) == len(set(names)) == 10
            assert not set(names) & seen
            assert {item.source for item in resp.items} <= {"graph", "ann_fallback", "popular"}
            assert any(item.source == "ann_fallback" for item in resp.items)
    finally:
        runtime.stop()


def test_a_complete_walk_pooled_with_ann_is_not_degraded() -> None:
    live = synthetic_live()
    runtime = make_runtime(live, None)
    runtime.build_now()
    surface = {"budget_ms": 500, "sla_p99_ms": 600, "k_default": 10, "k_max": 50,
               "walk": {"steps": 20_000, "n_p": 0}, "fallback": {"tiers": ["ann", "popular"]}}
    config = config_from_document({
        "surfaces": {"home": surface,  # default blend: pool a complete walk with ANN
                     "search": {**surface, "fallback": {**surface["fallback"],
                                                        "blend": {"pool_complete_walk": None}}}},
        "ann": TEST_ANN,
    })
    rec = make_recommender(live, config, extra_tiers={"ann": runtime.tier})
    snap = live.current
    user = next(u for u in range(snap.n_users) if snap.user_items(u)[0].shape[0] >= 3)
    try:
        answers = {name: rec.recommend(
            RecommendQuery(user_id=snap.users.name(user), surface=name, k=10),
            arrival=time.perf_counter(), client_remaining_s=None) for name in ("home", "search")}
    finally:
        runtime.stop()
    pooled, alone = answers["home"], answers["search"]
    assert pooled.coverage == 1.0 and not pooled.degraded and pooled.degraded_reasons == []
    assert {item.source for item in pooled.items} == {"graph", "ann_fallback"}
    assert pooled.source == "blended"
    assert alone.source == "graph" and not alone.degraded
