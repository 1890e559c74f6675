"""The blend learner: on recorded inputs it picks the blend that wins, each input alone
included, so the served answer on the validation replay is at least the best input."""

from __future__ import annotations

import numpy as np

from recserver.config import config_from_document
from recserver.eval.blend_learn import Asked, blend_recall, choose, learn_blend
from recserver.graph.config import GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.synthetic_churn import generate_churn
from recserver.graph.walk import WalkResult
from recserver.service.fallback import ChainResult
from recserver.service.merge import MergeInputs


def snapshot():  # type: ignore[no-untyped-def]
    graph = LiveGraph(GraphConfig())
    events = [Event("u", f"i{n}", "click", 1.0, 1.7e9 + n) for n in range(8)]
    graph.ingest(EventColumns.from_events(events))
    snap = graph.publish(compact=True)
    graph.stop()
    return snap


def inputs(snap, walk: list[str], chain: list[str]) -> MergeInputs:  # type: ignore[no-untyped-def]
    ids = [int(i) for i in snap.items.lookup_many(walk)]
    result = WalkResult(np.array(ids, np.int32), np.linspace(1, 0.5, len(ids)).astype(np.float32),
                        100, 100, 1.0, "completed")
    chain_ids = [int(i) for i in snap.items.lookup_many(chain)]
    fetched = ChainResult(items=chain_ids, scores=[1.0] * len(chain_ids),
                          sources=["trending"] * len(chain_ids), errors=[], seconds=0.0)
    return MergeInputs(snap, result, fetched, 1, np.empty(0, np.int32))


def test_the_learner_picks_the_input_that_wins_and_never_less_than_either() -> None:
    config = config_from_document({"surfaces": {"news": {
        "fallback": {"tiers": ["trending", "popular"]}}}})
    snap = snapshot()
    # k = 1: the walk's top is right in one session, the trending list's top in three.
    asked = [Asked(inputs(snap, ["i0", "i1"], ["i2", "i3"]), frozenset({"i0"}))]
    asked += [Asked(inputs(snap, ["i4", "i5"], ["i6", "i7"]), frozenset({"i6"}))] * 3
    learnt = choose(asked, config, "news")
    assert learnt.share < 0.5 and learnt.recall == 0.75  # trending leads: 3 of 4
    walk_alone = [v["recall"] for v in learnt.validation if v["pool_complete_walk"] == 1.0]
    assert max(walk_alone) == 0.25 and learnt.recall >= max(walk_alone)
    # The other way round, the walk alone wins (ties go to the walk's larger share).
    flipped = [Asked(one.inputs, frozenset({"i0", "i4"})) for one in asked]
    assert choose(flipped, config, "news").share == 1.0
    policy = config.surfaces["news"].fallback.blend.model_copy(update={"pool_complete_walk": 0.0})
    assert blend_recall(asked, policy, 0.5) == 0.75
    assert learnt.fragment() == {"surfaces": {"news": {"fallback": {"blend": {
        "mode": learnt.mode, "pool_complete_walk": learnt.share}}}}}


def test_on_a_churn_replay_the_learnt_blend_is_at_least_the_best_input() -> None:
    config = config_from_document({"surfaces": {"news": {
        "walk": {"steps": 4_000, "recency_half_life_minutes": 30},
        "fallback": {"tiers": ["trending", "popular"]},
        "trending": {"half_life_minutes": 30}}}})
    learnt = learn_blend(config, generate_churn(6_000, seed=3), "news", max_sessions=120)
    assert learnt.sessions > 20
    by_share = {(v["mode"], v["pool_complete_walk"]): v["recall"] for v in learnt.validation}
    walk_alone, trending_alone = by_share[("rank", 1.0)], by_share[("rank", 0.0)]
    assert learnt.recall >= max(walk_alone, trending_alone) > 0
    assert learnt.recall == max(by_share.values())
