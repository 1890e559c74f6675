"""Online quality: sampled answers, later events, hits within the window, misses after it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.metrics import Metrics, OnlineQualityMetrics
from recserver.online.config import OnlineQualityConfig
from recserver.online.quality import OnlineQuality
from recserver.service.observer import Observers
from recserver.service.types import Recommendation, RecommendedItem, RecommendQuery
from tests.node_harness import DataSource, InProcessNode, wait_sample
from tests.server_fixtures import config_document, write_config
from tests.service_fixtures import clustered_graph, make_recommender, surface_config


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cfg(**kw: float) -> OnlineQualityConfig:
    base: dict[str, float] = {"sample_rate": 1.0, "window_s": 100.0, "late_s": 10.0,
                              "clock_skew_s": 5.0}
    return OnlineQualityConfig.model_validate({**base, **kw})


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_scripted_event_sequence() -> None:
    clock = Clock(1_000.0)
    registry = CollectorRegistry()
    online = OnlineQuality(cfg(), metrics=OnlineQualityMetrics(registry), clock=clock)
    assert online.observe_answer("home", "u1", ["x", "y"], "graph")
    assert online.observe_answer("home", "u2", ["z"], "popular")
    clock.now = 1_010.0
    assert online.observe_answer("item_page", "u1", ["y", "w"], "ann_fallback")
    assert online.pending == 3

    # u1 buys y at 1050: both of u1's answers recommended it, each counts once.
    assert online.observe_events(["u1"], ["y"], [1_050.0]) == 2
    # u2's events: another item, then z but before the answer was served (beyond the skew).
    assert online.observe_events(["u2", "u2"], ["q", "z"], [1_020.0, 990.0]) == 0
    # u1 again, on an item of an answer already counted: no second hit.
    assert online.observe_events(["u1"], ["x"], [1_060.0]) == 0
    # Events of users without waiting answers are ignored.
    assert online.observe_events(["nobody"], ["x"], [1_060.0]) == 0

    clock.now = 1_111.0  # u2's window (1000 + 100) plus late_s (10) has passed
    assert online.expire() == 1
    assert online.observe_events(["u2"], ["z"], [1_105.0]) == 0  # too late: already a miss
    assert online.pending == 0
    assert online.counts == {
        ("home", "graph", "sampled"): 1, ("home", "popular", "sampled"): 1,
        ("item_page", "ann_fallback", "sampled"): 1,
        ("home", "graph", "hit"): 1, ("item_page", "ann_fallback", "hit"): 1,
        ("home", "popular", "missed"): 1,
    }
    assert value(registry, "recserver_online_answers_hit_total", surface="home",
                 source="graph") == 1
    assert value(registry, "recserver_online_answers_missed_total", surface="home",
                 source="popular") == 1
    assert value(registry, "recserver_online_answers_sampled_total", surface="item_page",
                 source="ann_fallback") == 1


def test_window_edges_and_skew() -> None:
    clock = Clock(1_000.0)
    online = OnlineQuality(cfg(), clock=clock)
    for user in ("a", "b", "c", "d"):
        online.observe_answer("home", user, ["i"], "graph")
    hits = online.observe_events(["a", "b", "c", "d"], ["i"] * 4,
                                 [995.0, 1_100.0, 994.9, 1_100.1])
    assert hits == 2  # exactly at -skew and at +window count; just outside does not


def test_sampling_and_bounded_memory() -> None:
    draws = iter([0.7, 0.2, 0.2, 0.2, 0.2])
    registry = CollectorRegistry()
    online = OnlineQuality(cfg(sample_rate=0.5, max_pending_per_surface=2),
                           metrics=OnlineQualityMetrics(registry), clock=Clock(0.0),
                           rng=lambda: next(draws))
    rec = Recommendation([RecommendedItem("x", 1.0, "graph")], "graph", False, [], 1.0, 50, 1, 1)
    query = RecommendQuery(user_id="u", surface="home")
    online.request_finished("home", rec, query)  # draw 0.7 >= 0.5: not sampled
    online.request_finished("home", rec, RecommendQuery(user_id="", surface="home",
                                                        context_item_ids=("x",)))  # anonymous
    online.request_finished("home", rec, None)  # no query: nothing to match
    assert online.pending == 0
    for _ in range(3):
        online.request_finished("home", rec, query)
    assert online.pending == 2
    assert online.counts[("home", "graph", "dropped")] == 1
    assert value(registry, "recserver_online_answers_dropped_total", surface="home") == 1


def test_every_batch_ingested_into_the_live_graph_is_seen() -> None:
    clock = Clock(2_000.0)
    online = OnlineQuality(cfg(), clock=clock)
    graph = LiveGraph(GraphConfig(event_weights=EventWeightsConfig(half_life_days=None),
                                  prune=PruneConfig(hub_percentile=None)))
    graph.on_ingest.append(online.on_ingest)
    online.observe_answer("home", "u1", ["a", "b"], "blended")
    online.observe_answer("home", "u2", ["c"], "graph")
    batch = EventColumns.from_events([
        Event("u1", "b", "purchase", 1, 2_010.0, event_id="e1"),
        Event("u3", "c", "purchase", 1, 2_010.0, event_id="e2"),
    ])
    graph.ingest(batch)
    assert online.counts[("home", "blended", "hit")] == 1
    # A replay of an event already applied is a duplicate, not a new interaction.
    online.observe_answer("home", "u1", ["b"], "graph")
    graph.ingest(batch)
    assert online.counts[("home", "graph", "hit")] == 0


def test_a_failing_listener_does_not_fail_the_ingest() -> None:
    graph = LiveGraph(GraphConfig())

    def boom(cols: EventColumns, outcome: object) -> None:
        raise RuntimeError("listener bug")

    graph.on_ingest.append(boom)
    outcome = graph.ingest(EventColumns.from_events([Event("u", "i", "purchase", 1, 1.0)]))
    assert outcome.n_accepted == 1


def test_the_recommender_passes_the_query_to_its_observers() -> None:
    live = clustered_graph()
    registry = CollectorRegistry()
    online = OnlineQuality(cfg(), metrics=OnlineQualityMetrics(registry), clock=time.time)
    config = surface_config()
    metrics = Metrics(config, CollectorRegistry())
    recommender = make_recommender(live, config)
    recommender._observer = Observers([metrics, online])  # as the single process wires it
    rec = recommender.recommend(RecommendQuery(user_id="u0", surface="home", k=3),
                                arrival=time.perf_counter(), client_remaining_s=None)
    assert online.pending == 1
    live.ingest(EventColumns.from_events([
        Event("u0", rec.items[1].item_id, "purchase", 1, time.time())]))
    assert online.counts[("home", rec.source, "hit")] == 0  # no hook registered yet
    live.on_ingest.append(online.on_ingest)
    live.ingest(EventColumns.from_events([
        Event("u0", rec.items[0].item_id, "purchase", 1, time.time())]))
    assert value(registry, "recserver_online_answers_hit_total", surface="home",
                 source=rec.source) == 1


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessNode]:
    root = tmp_path_factory.mktemp("online-quality")
    document = config_document()
    document["online_quality"] = {"sample_rate": 1.0}
    app = InProcessNode(write_config(root / "config.yaml", document), root)
    app.start(DataSource(synthetic="20000"))
    yield app
    app.stop(0)


def test_the_node_counts_hits_per_surface_and_source(app: InProcessNode) -> None:
    # The worker answers and reports the sampled answer; the builder, which applies the events,
    # matches them and counts on its registry (the node's /metrics).
    user = app.graph.current.users.name(3)
    rec = app.recommender.recommend(RecommendQuery(user_id=user, surface="home", k=5),
                                    arrival=time.perf_counter(), client_remaining_s=None)
    assert rec.items
    registry = app.builder.metrics.registry
    assert wait_sample(registry, "recserver_online_answers_sampled_total",
                       {"surface": "home", "source": rec.source}) >= 1
    app.graph.ingest(EventColumns.from_events([
        Event(user, rec.items[0].item_id, "purchase", 1, time.time())]))
    assert value(registry, "recserver_online_answers_hit_total", surface="home",
                 source=rec.source) == 1
