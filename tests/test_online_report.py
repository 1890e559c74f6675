"""A worker's served-answer reports reach the builder's intake over a real Unix-socket server.

The answer path never waits: a full report queue drops the answer and counts it, and so does a
batch the builder cannot take. What arrives is matched like single-process online quality: a
later event of the user on an answered item is a hit, a repeat answer is compared for stability.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from recserver.config import ServerSection
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.metrics import OnlineQualityMetrics
from recserver.metrics.stability import StabilityMetrics
from recserver.online.config import OnlineQualityConfig
from recserver.online.intake import OnlineIntake
from recserver.online.report import ServedReporter
from recserver.server.grpc_server import GrpcServer
from recserver.service.types import Recommendation, RecommendedItem, RecommendQuery

WAIT_S = 20.0


class _NoRecommend:
    def recommend(self, query: RecommendQuery, *, arrival: float,
                  client_remaining_s: float | None) -> Recommendation:
        raise AssertionError("not asked")


def cfg(rate: float = 1.0) -> OnlineQualityConfig:
    return OnlineQualityConfig(sample_rate=rate, window_s=60.0, late_s=1.0)


def answer(*items: str) -> Recommendation:
    return Recommendation(items=[RecommendedItem(i, 1.0, "popular") for i in items],
                          source="popular", degraded=False, degraded_reasons=[], coverage=1.0,
                          budget_ms=50.0, server_elapsed_ms=1.0, snapshot_version=1)


def query(user: str, *context: str) -> RecommendQuery:
    return RecommendQuery(user_id=user, surface="home", context_item_ids=context)


def wait_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    registry = CollectorRegistry()
    reporter = ServedReporter(cfg(), "unix:/nonexistent", max_queued=2, batch=100,
                              metrics=OnlineQualityMetrics(registry))  # never started
    for user in ("a", "b", "c", "d"):
        reporter.request_finished("home", answer("x"), query(user))
    assert reporter.dropped["queue_full"] == 2
    assert registry.get_sample_value("recserver_online_reports_dropped_total",
                                     {"reason": "queue_full"}) == 2


def test_what_is_not_sampled_is_not_queued() -> None:
    reporter = ServedReporter(cfg(rate=0.0), "unix:/nonexistent", max_queued=1)
    reporter.request_finished("home", answer("x"), query("a"))
    reporter.request_finished("home", answer("x"), query(""))  # no user: nothing to match
    reporter.request_finished("home", answer("x"), query("b"))
    assert reporter.dropped["queue_full"] == 0  # nothing was queued, so nothing overflowed


def test_an_unreachable_builder_costs_the_answers_not_the_answer_path(tmp_path: Path) -> None:
    reporter = ServedReporter(cfg(), f"unix:{tmp_path / 'absent.sock'}", interval_s=0.05,
                              timeout_s=0.5)
    reporter.start()
    try:
        started = time.monotonic()
        for n in range(3):
            reporter.request_finished("home", answer("x"), query(f"u{n}"))
        assert time.monotonic() - started < 0.5  # queued, never sent inline
        wait_until(lambda: reporter.dropped["builder_unreachable"] == 3)
        assert reporter.sent == 0
    finally:
        reporter.stop()


def test_reported_answers_are_matched_with_the_builders_events(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    graph = LiveGraph(GraphConfig(event_weights=EventWeightsConfig(half_life_days=None),
                                  prune=PruneConfig(hub_percentile=None)))
    intake = OnlineIntake(cfg(), graph, quality_metrics=OnlineQualityMetrics(registry),
                          stability_metrics=StabilityMetrics(registry))
    socket = tmp_path / "builder.sock"
    server = GrpcServer(_NoRecommend(), ServerSection(), unix_socket=socket)
    server.add_service(intake.register)
    server.start()
    reporter = ServedReporter(cfg(), f"unix:{socket}", interval_s=0.05)
    reporter.start()
    try:
        reporter.request_finished("home", answer("a", "b"), query("clicker"))
        reporter.request_finished("home", answer("c", "d"), query("twice"))
        reporter.request_finished("home", answer("c", "e"), query("twice"))
        reporter.request_finished("home", answer("f"), query("reader", "f0"))  # a context
        wait_until(lambda: reporter.sent == 4)
        graph.ingest(EventColumns.from_events(
            [Event("clicker", "b", "purchase", 1, time.time(), event_id="e1")]))
        hits = {"surface": "home", "source": "popular"}
        assert registry.get_sample_value("recserver_online_answers_hit_total", hits) == 1
        assert registry.get_sample_value("recserver_online_answers_sampled_total", hits) == 4
        # Only the repeat answer without context is compared: half its items stayed.
        assert intake.stability.totals == {"home": [1, 0.5]}
        assert registry.get_sample_value("recserver_online_stability_overlap_ratio_count",
                                         {"surface": "home"}) == 1
    finally:
        reporter.stop()
        server.stop(0)
