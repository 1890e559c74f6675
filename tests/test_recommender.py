"""The Recommend pipeline in-process: budgets, degradation, fallback, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recserver.core.errors import InvalidArgument
from recserver.service.fallback import FallbackRequest
from recserver.service.types import RecommendQuery, Source
from tests.service_fixtures import FakeClock, clustered_graph, make_recommender, surface_config


@pytest.fixture(scope="module")
def live():
    return clustered_graph()


def slow_walk(clock: FakeClock, steps_per_ms: float):
    """A walk hook that makes the walk take fake time in proportion to its steps."""
    last = [0]

    def hook(steps_done: int) -> None:
        if steps_done < last[0]:  # a new walk started
            last[0] = 0
        clock.advance_ms((steps_done - last[0]) / steps_per_ms)
        last[0] = steps_done

    return hook


def ask(rec, clock=None, remaining=None, **kw):
    now = clock() if clock is not None else time.perf_counter()
    query = RecommendQuery(**{"user_id": "u0", "surface": "home", **kw})
    return rec.recommend(query, arrival=now, client_remaining_s=remaining)


def test_known_user_gets_graph_answer_from_their_cluster(live) -> None:
    rec = make_recommender(live, surface_config())
    resp = ask(rec, user_id="u0", k=5)
    assert resp.source == "graph" and not resp.degraded
    assert resp.coverage == 1.0
    assert len(resp.items) == 5
    # u0 is in cluster 'a': the walk finds other 'a' items, never what u0 already bought.
    bought = {live.current.items.name(int(i)) for i in live.current.user_items(0)[0]}
    names = [item.item_id for item in resp.items]
    assert not set(names) & bought
    assert sum(name.startswith("a") for name in names) >= 4
    assert all(item.source == "graph" for item in resp.items)
    assert resp.snapshot_version == live.current.version
    assert {"queue", "seeds", "walk", "rank"} <= set(resp.stage_ms)


def test_each_surface_answers_with_its_own_budget(live) -> None:
    rec = make_recommender(live, surface_config())
    assert ask(rec, surface="home").budget_ms == 50
    assert ask(rec, surface="item_page").budget_ms == 30


def test_request_budget_and_client_deadline_only_lower_the_budget(live) -> None:
    rec = make_recommender(live, surface_config())
    assert ask(rec, budget_ms=20.0).budget_ms == 20.0
    assert ask(rec, budget_ms=500.0).budget_ms == 50.0  # cannot raise it
    clock = FakeClock()
    rec = make_recommender(live, surface_config(), clock=clock)
    resp = ask(rec, clock=clock, remaining=0.012)  # client allows 12 ms, margin 2 ms
    assert resp.budget_ms == pytest.approx(12 * 0.99 - 2)  # 1% and 2 ms kept back


def test_slow_walk_is_cut_at_the_deadline_and_topped_up(live) -> None:
    clock = FakeClock()
    rec = make_recommender(live, surface_config(), clock=clock,
                           walk_hook=slow_walk(clock, steps_per_ms=300))
    resp = ask(rec, clock=clock, k=10)
    assert resp.degraded and "deadline" in resp.degraded_reasons
    assert 0 < resp.coverage < 1
    assert resp.steps_done < resp.steps_planned
    assert resp.server_elapsed_ms <= resp.budget_ms  # answered inside the budget
    assert len(resp.items) == 10
    assert resp.source in ("graph_partial", "blended")


def test_low_coverage_walk_is_blended_with_the_fallback(live) -> None:
    clock = FakeClock()
    rec = make_recommender(live, surface_config(walk={"steps": 200_000, "n_p": 0}), clock=clock,
                           walk_hook=slow_walk(clock, steps_per_ms=1000))
    resp = ask(rec, clock=clock, k=10)
    assert resp.coverage < 0.5
    assert resp.source == "blended"
    sources = {item.source for item in resp.items}
    assert sources == {"graph_partial", "popular"}
    assert resp.server_elapsed_ms <= resp.budget_ms


class SlowTier:
    name = "ann"  # stands in for the ANN tier
    source: Source = "ann_fallback"

    def __init__(self, clock: FakeClock, ms: float) -> None:
        self.clock, self.ms = clock, ms

    def fetch(self, request: FallbackRequest):
        self.clock.advance_ms(self.ms)
        return np.empty(0, np.int32), np.empty(0, np.float32)


def test_reserve_adapts_to_a_slow_fallback(live) -> None:
    clock = FakeClock()
    config = surface_config(fallback={"tiers": ["ann", "popular"], "min_reserve_ms": 1.0},
                            walk={"steps": 200_000, "n_p": 0})
    rec = make_recommender(live, config, clock=clock,
                           walk_hook=slow_walk(clock, steps_per_ms=1000),
                           extra_tiers={"ann": SlowTier(clock, 8.0)})
    first = ask(rec, clock=clock, k=10)
    reserve = rec.reserve_for("home", config.surfaces["home"]).reserve_ms
    assert reserve >= 8.0  # learned from the observed fallback durations
    later = [ask(rec, clock=clock, k=10) for _ in range(5)]
    # With the learned reserve the walk stops early enough that walk + fallback fit.
    assert all(r.server_elapsed_ms <= r.budget_ms for r in later)
    assert first.server_elapsed_ms > 0


def test_budget_spent_before_pickup_skips_the_walk(live) -> None:
    clock = FakeClock()
    rec = make_recommender(live, surface_config(), clock=clock)
    query = RecommendQuery(user_id="u0", surface="home", k=5)
    resp = rec.recommend(query, arrival=clock() - 0.060, client_remaining_s=None)
    assert resp.source == "popular"
    assert "budget_spent" in resp.degraded_reasons
    assert resp.steps_done == 0 and resp.coverage == 0.0
    assert len(resp.items) == 5


def test_unknown_user_without_context_gets_popular_cold_start(live) -> None:
    rec = make_recommender(live, surface_config())
    resp = ask(rec, user_id="stranger", k=3)
    assert resp.source == "popular" and "cold_start" in resp.degraded_reasons
    assert resp.items[0].item_id == "hit"


def test_unknown_user_with_context_walks_from_the_context(live) -> None:
    rec = make_recommender(live, surface_config())
    resp = ask(rec, user_id="stranger", surface="item_page", k=5,
               context_item_ids=("b1", "b2", "not-an-item"))
    assert resp.source == "graph"
    assert "context_unknown" in resp.degraded_reasons
    names = [item.item_id for item in resp.items]
    assert "b1" not in names and "b2" not in names
    assert sum(n.startswith("b") for n in names) >= 4


def test_excluded_items_never_come_back(live) -> None:
    rec = make_recommender(live, surface_config())
    first = [i.item_id for i in ask(rec, k=5).items]
    again = [i.item_id for i in ask(rec, k=5, exclude_item_ids=tuple(first[:2])).items]
    assert not set(first[:2]) & set(again)


@pytest.mark.parametrize(("kw", "message"), [
    ({"surface": "nope"}, "unknown surface 'nope'; known surfaces: home, item_page"),
    ({"user_id": ""}, "user_id is empty and no context_item_ids"),
    ({"k": -1}, "k=-1 is negative"),
    ({"k": 21}, "k=21 exceeds k_max=20"),
    ({"budget_ms": -5.0}, "budget_ms=-5.0 is invalid"),
    ({"budget_ms": 0.0}, "budget_ms=0.0 is invalid"),
    ({"context_item_ids": ("x",) * 51}, "context_item_ids has 51 ids"),
    ({"context_item_ids": ("",)}, "context_item_ids[0] is empty"),
])
def test_bad_requests_say_what_to_fix(live, kw, message) -> None:
    rec = make_recommender(live, surface_config())
    with pytest.raises(InvalidArgument) as err:
        ask(rec, **kw)
    assert message in str(err.value)
