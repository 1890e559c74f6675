"""Catalogue filtering in the request path, and catalogue updates through the log and checkpoints.

A small clustered graph (even users buy ``a*`` items, odd users ``b*``, everyone ``hit``) with
the real Recommender and fallback chain: every tier (complete walk, walk cut by its deadline, a
tier serving a stale cached list, popular) must leave out hidden, expired and out-of-category
items, and say ``filtered`` when the filter made a tier come up short.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recserver.catalog.codec import encode_updates
from recserver.catalog.filter import ItemFilter
from recserver.catalog.items import ItemUpdate
from recserver.eventlog.codec import encode_batch
from recserver.eventlog.file_log import FileEventLog
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.ingest.checkpoint import CheckpointStore
from recserver.ingest.recovery import Checkpointer, restore_latest
from recserver.ingest.tailer import LogTailer
from recserver.service.fallback import FallbackRequest, Float32Array, Int32Array, PopularTier
from recserver.service.types import Recommendation, RecommendQuery, Source
from tests.service_fixtures import clustered_graph, make_recommender, surface_config
from tests.test_recovery import batch, config


def ask(rec: object, user: str = "u0", **kw: object) -> Recommendation:
    query = RecommendQuery(user_id=user, surface="home", **kw)  # type: ignore[arg-type]
    return rec.recommend(query, arrival=time.perf_counter(),  # type: ignore[attr-defined]
                         client_remaining_s=None)


def names(answer: Recommendation) -> list[str]:
    return [item.item_id for item in answer.items]


def hide(live: LiveGraph, *items: str, **rules: object) -> None:
    """Hide ``items`` (or apply ``rules`` instead) and publish."""
    rules = rules or {"hidden": True}
    live.update_items([ItemUpdate(i, **rules) for i in items])  # type: ignore[arg-type]
    live.publish()


class StaleCache:
    """A tier answering from a list computed before anything was hidden (a cached ANN entry)."""

    name = "ann"
    source: Source = "ann_fallback"

    def __init__(self, live: LiveGraph, items: list[str]) -> None:
        self.ids = np.asarray(live.current.items.lookup_many(items), np.int32)

    def fetch(self, request: FallbackRequest) -> tuple[Int32Array, Float32Array]:
        return self.ids[: request.k], np.ones(min(len(self.ids), request.k), np.float32)


def test_a_hidden_item_leaves_the_walk_answer_at_the_next_publish() -> None:
    live = clustered_graph()
    rec = make_recommender(live, surface_config(fallback={"blend": {"pool_complete_walk": None}}))
    before = ask(rec)
    assert before.source == "graph" and len(before.items) == 5
    top = names(before)[0]
    hide(live, top)
    after = ask(rec)
    assert top not in names(after) and len(after.items) == 5 and after.source == "graph"
    hide(live, top, hidden=False)  # shown again
    assert top in names(ask(rec))


def test_a_walk_cut_by_its_deadline_is_filtered_too() -> None:
    live = clustered_graph()
    hidden = [f"a{i}" for i in range(0, 12, 2)] + ["hit"]
    hide(live, *hidden)
    rec = make_recommender(
        live, surface_config(budget_ms=15, walk={"steps": 2_000_000, "batch_steps": 256,
                                                 "n_p": 0}),
        walk_hook=lambda steps: time.sleep(0.002))
    answer = ask(rec)
    assert "deadline" in answer.degraded_reasons and answer.items
    assert not set(names(answer)) & set(hidden)


def test_popular_and_stale_cached_results_never_return_hidden_items() -> None:
    live = clustered_graph()
    stale = StaleCache(live, ["b1", "b2", "hit", "b3"])
    rec = make_recommender(live, surface_config(fallback={"tiers": ["ann", "popular"]}),
                           extra_tiers={"ann": stale})
    cold = ask(rec, user="nobody-yet", context_item_ids=())  # cold start: the chain answers
    assert "hit" in names(cold)
    hide(live, "hit", "b2")
    cold = ask(rec, user="nobody-yet")
    assert not {"hit", "b2"} & set(names(cold))
    assert [i.source for i in cold.items[:2]] == ["ann_fallback", "ann_fallback"]
    assert "filtered" in cold.degraded_reasons  # the stale list came up short: popular filled


def test_expired_items_leave_at_their_time() -> None:
    live = clustered_graph()
    rec = make_recommender(live, surface_config(fallback={"blend": {"pool_complete_walk": None}}))
    top = names(ask(rec))[0]
    hide(live, top, expires_at=time.time() + 3600)
    assert top in names(ask(rec))
    hide(live, top, expires_at=time.time() - 1)
    assert top not in names(ask(rec))


def categorise(live: LiveGraph) -> None:
    snap = live.current
    items = snap.items.names(range(snap.n_items))
    live.update_items([ItemUpdate(i, categories=("team-a" if i.startswith("a") else "team-b",
                                                 "odd" if i[-1] in "13579" else "even"))
                       for i in items if i != "hit"])
    live.publish()


def test_category_filters_hold_on_every_tier_and_top_up_under_the_same_filter() -> None:
    live = clustered_graph()
    categorise(live)
    stale = StaleCache(live, ["a1", "b1", "hit", "b2", "a2"])
    rec = make_recommender(live, surface_config(fallback={"tiers": ["ann", "popular"]}),
                           extra_tiers={"ann": stale})
    # u0 walks in the a-cluster: asking for team-b leaves the walk few of the 12 b-items;
    # the tiers after it top up under the same filter, to every b-item there is.
    answer = ask(rec, categories=("team-b",), k=20)
    assert sorted(names(answer)) == sorted(f"b{i}" for i in range(12))
    assert "filtered" in answer.degraded_reasons and answer.degraded
    assert "ann_fallback" in {i.source for i in answer.items}
    # Any-of: two categories.
    either = ask(rec, categories=("team-b", "odd"), k=10)
    assert all(i.startswith("b") or i[-1] in "13579" for i in names(either))
    # Within the walk's own cluster the walk still answers.
    own = ask(rec, categories=("team-a",))
    assert own.items and all(i.startswith("a") for i in names(own))


def test_a_surface_sets_default_categories_a_request_replaces_them() -> None:
    live = clustered_graph()
    categorise(live)
    rec = make_recommender(live, surface_config(filters={"categories": ["team-b"]}))
    assert all(i.startswith("b") for i in names(ask(rec)))
    assert all(i.startswith("a") for i in names(ask(rec, categories=("team-a",))))


def test_items_may_be_described_before_any_event() -> None:
    live = clustered_graph()
    live.update_items([ItemUpdate("future-item", hidden=True, categories=("new",))])
    snap = live.publish()
    item = snap.items.get("future-item")
    assert item is not None and snap.catalog is not None
    assert snap.catalog.rules(item).hidden


def test_updates_apply_from_the_log_in_order_and_survive_a_checkpoint(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path / "log")
    try:
        cols = batch(1)
        log.append(encode_batch(cols, None, appended_at=0.0, origin="t"))
        log.append(encode_updates([ItemUpdate("i7", hidden=True, categories=("x",)),
                                   ItemUpdate("never-seen", categories=("y",))],
                                  appended_at=time.time(), origin="t"))
        log.append(encode_updates([ItemUpdate("i7", hidden=False)], appended_at=time.time(),
                                  origin="t"))
        graph = LiveGraph(config())
        tailer = LogTailer(log, graph)
        tailer.catch_up()
        snap = graph.publish()
        assert tailer.visible_position == tailer.position  # catalogue records count as visible
        assert snap.catalog is not None
        i7 = snap.items.get("i7")
        assert i7 is not None and snap.catalog.rules(i7).hidden is False  # the later record won
        assert snap.catalog.rules(i7).categories == ("x",)

        store = CheckpointStore(tmp_path / "ckpt")
        assert Checkpointer(graph, store, log, interval_s=3600).save_now() is not None
        log.append(encode_updates([ItemUpdate("i7", hidden=True)], appended_at=time.time(),
                                  origin="t"))
        recovered = LiveGraph(config())
        assert restore_latest(recovered, store) is not None
        LogTailer(log, recovered).catch_up()  # only the record after the checkpoint
        snap = recovered.publish()
        assert snap.catalog is not None
        i7 = snap.items.get("i7")
        seen = snap.items.get("never-seen")
        assert i7 is not None and seen is not None
        assert snap.catalog.rules(i7).hidden and snap.catalog.rules(seen).categories == ("y",)
    finally:
        log.close()


def test_an_item_described_before_its_first_event_keeps_its_rules_after_it() -> None:
    live = clustered_graph()
    live.update_items([ItemUpdate("launch", hidden=True)])
    live.publish()
    # Every other user of u1's cluster buys it: u1's walk ranks it high.
    live.ingest(EventColumns.from_events(
        [Event(f"u{u}", "launch", "purchase", 5, 2_000.0) for u in range(3, 60, 2)]))
    live.publish()
    rec = make_recommender(live, surface_config())
    assert "launch" not in names(ask(rec, user="u1"))
    hide(live, "launch", hidden=False)
    assert "launch" in names(ask(rec, user="u1"))


def test_a_complete_walk_pooled_with_a_filtered_tier_is_not_degraded() -> None:
    live = clustered_graph()
    stale = StaleCache(live, ["a1", "hit", "a2"])
    rec = make_recommender(live, surface_config(fallback={"tiers": ["ann", "popular"]}),
                           extra_tiers={"ann": stale})
    hide(live, "hit")
    answer = ask(rec)
    assert answer.source == "blended" and not answer.degraded and len(answer.items) == 5
    assert "hit" not in names(answer)


def test_popular_ranks_within_the_category_when_its_head_is_filtered_away() -> None:
    live = clustered_graph()
    categorise(live)
    snap = live.current
    popular = PopularTier(size=3)  # the head: "hit" and two others
    popular.refresh(snap)
    flt = ItemFilter(snap.catalog, time.time(), ("team-b", "even"))  # type: ignore[arg-type]
    request = FallbackRequest(snapshot=snap, surface="home", user=-1,
                              context=np.empty(0, np.int32), exclude=np.empty(0, np.int32),
                              k=4, deadline=float("inf"), keep=flt)
    items, scores = popular.fetch(request)
    got = snap.items.names(items.tolist())
    assert len(got) == 4 and all(i.startswith("b") or i[-1] in "02468" for i in got)
    weight = snap.base_items.row_weight
    assert list(scores) == sorted(scores, reverse=True)  # still by popularity
    assert all(weight[i] > 0 for i in items.tolist())
