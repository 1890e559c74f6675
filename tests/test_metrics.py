"""recserver.metrics: names, buckets, bounded labels, cached children, collectors, HTTP serving.

Every test builds its own ``CollectorRegistry`` (the library's global one is never touched) and
reads values back with ``registry.get_sample_value``.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.utils import floatToGoString

from recserver.config import RecServerConfig, config_from_document
from recserver.metrics import (
    CACHE_OPS,
    REASONS,
    STAGES,
    CacheMetrics,
    GraphCollector,
    Metrics,
    reason_label,
)
from recserver.metrics.http import MetricsBindError, MetricsServer
from recserver.metrics.labels import BASE_LATENCY_MS
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.outcomes import RECOMMEND_METHOD, RecommendOutcomes
from recserver.server.servicer import SOURCE_TO_PROTO
from recserver.service.types import SOURCES, Recommendation
from tests.service_fixtures import clustered_graph

DOCUMENT = {
    "surfaces": {
        "home": {"budget_ms": 60, "sla_p99_ms": 80},
        "item_page": {"budget_ms": 33.3, "sla_p99_ms": 45},  # neither is a base boundary
        "search": {"budget_ms": 30, "sla_p99_ms": 50},
    },
}


def make_config(**surfaces: dict[str, float]) -> RecServerConfig:
    doc = {"surfaces": {**DOCUMENT["surfaces"], **surfaces}}
    return config_from_document(doc)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(make_config(), registry)


def answer(**kw: object) -> Recommendation:
    fields: dict[str, object] = dict(
        items=[], source="graph", degraded=False, degraded_reasons=[], coverage=1.0,
        budget_ms=60.0, server_elapsed_ms=12.0, snapshot_version=1,
        stage_ms={"queue": 0.1, "seeds": 0.2, "walk": 11.0, "rank": 0.3},
    )
    fields.update(kw)
    return Recommendation(**fields)  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def label_values(registry: CollectorRegistry, sample: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for family in registry.collect()
        for s in family.samples
        if s.name == sample and label in s.labels
    }


# -- buckets ---------------------------------------------------------------------------------


def test_every_budget_and_sla_is_an_exact_bucket_boundary(metrics: Metrics) -> None:
    wanted = {0.06, 0.08, 0.0333, 0.045, 0.03, 0.05}
    assert wanted <= set(metrics.buckets)
    assert {ms / 1000 for ms in BASE_LATENCY_MS} <= {round(b, 9) for b in metrics.buckets}
    assert list(metrics.buckets) == sorted(set(metrics.buckets))
    # The le label reads the same as the boundary info names it ("0.0333", not 0.0333000...01).
    assert floatToGoString(0.0333) == "0.0333"
    assert metrics.request_duration._upper_bounds[:-1] == list(metrics.buckets)


def test_the_sla_boundary_names_the_bucket_that_counts_good_requests(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    for surface, le in {"home": "0.08", "item_page": "0.045", "search": "0.05"}.items():
        assert value(registry, "recserver_surface_sla_boundary_info", surface=surface, le=le) == 1
        assert value(registry, "recserver_request_duration_seconds_bucket",
                     surface=surface, source="graph", le=le) == 0  # the series exists
    assert value(registry, "recserver_surface_budget_seconds", surface="item_page") == 0.0333
    assert value(registry, "recserver_surface_sla_seconds", surface="home") == 0.08


def test_a_reload_with_a_new_sla_points_at_the_boundary_below_and_warns(
    metrics: Metrics, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="recserver.metrics.serving"):
        metrics.apply_config(make_config(home={"budget_ms": 60, "sla_p99_ms": 77}))
    assert "restart" in caplog.text and "77" in caplog.text
    assert value(registry, "recserver_surface_sla_seconds", surface="home") == 0.077
    assert label_values(registry, "recserver_surface_sla_boundary_info", "le") >= {"0.06"}
    home = {s.labels["le"] for f in registry.collect() for s in f.samples
            if s.name == "recserver_surface_sla_boundary_info" and s.labels["surface"] == "home"}
    assert home == {"0.06"}  # the old 0.08 child is gone; 0.06 is the largest boundary <= 77 ms


def test_a_reload_adds_and_removes_surfaces(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    config = config_from_document({"surfaces": {
        "home": {"budget_ms": 60, "sla_p99_ms": 80}, "feed": {"budget_ms": 30, "sla_p99_ms": 50},
    }})
    metrics.apply_config(config)
    assert label_values(registry, "recserver_surface_budget_seconds", "surface") == {"home", "feed"}
    metrics.request_finished("feed", answer(budget_ms=30.0))
    assert value(registry, "recserver_request_duration_seconds_count",
                 surface="feed", source="graph") == 1


# -- the request path ------------------------------------------------------------------------


def test_a_request_records_duration_stages_and_coverage(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.request_finished("home", answer(source="blended", coverage=0.6))
    metrics.encode_finished("home", 0.00004)
    assert value(registry, "recserver_request_duration_seconds_count",
                 surface="home", source="blended") == 1
    assert value(registry, "recserver_request_duration_seconds_sum",
                 surface="home", source="blended") == pytest.approx(0.012)
    assert value(registry, "recserver_request_duration_seconds_bucket",
                 surface="home", source="blended", le="0.015") == 1
    assert value(registry, "recserver_request_duration_seconds_bucket",
                 surface="home", source="blended", le="0.01") == 0
    for stage, seconds in {"queue": 0.0001, "walk": 0.011, "encode": 0.00004}.items():
        assert value(registry, "recserver_request_stage_duration_seconds_sum",
                     surface="home", stage=stage) == pytest.approx(seconds)
    assert value(registry, "recserver_walk_coverage_ratio_bucket", surface="home", le="0.75") == 1
    assert value(registry, "recserver_walk_coverage_ratio_bucket", surface="home", le="0.5") == 0


def test_degraded_reasons_collapse_to_a_fixed_set(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.request_finished("search", answer(
        source="popular", degraded=True, budget_ms=30.0, server_elapsed_ms=31.0,
        degraded_reasons=["deadline", "fallback_error:ann", "fallback_error:redis", "new_thing"],
    ))
    metrics.request_finished("search", answer(source="graph_partial", degraded=True))
    assert value(registry, "recserver_request_degraded_total",
                 surface="search", reason="fallback_error") == 2
    assert value(registry, "recserver_request_degraded_total",
                 surface="search", reason="deadline") == 1
    assert value(registry, "recserver_request_degraded_total",
                 surface="search", reason="other") == 1
    assert value(registry, "recserver_request_degraded_total",
                 surface="search", reason="unspecified") == 1
    assert value(registry, "recserver_request_budget_exhausted_total", surface="search") == 1
    assert value(registry, "recserver_request_over_budget_total", surface="search") == 1
    assert label_values(registry, "recserver_request_degraded_total", "reason") <= set(REASONS)
    assert reason_label("fallback_error:anything") == "fallback_error"


def test_unknown_stage_names_are_bounded(metrics: Metrics, registry: CollectorRegistry) -> None:
    for i in range(50):
        metrics.request_finished("home", answer(stage_ms={f"stage{i}": 1.0, "rank": 0.5}))
    assert label_values(registry, "recserver_request_stage_duration_seconds_count", "stage") <= (
        set(STAGES)
    )
    assert value(registry, "recserver_request_stage_duration_seconds_count",
                 surface="home", stage="other") == 50
    assert value(registry, "recserver_request_stage_duration_seconds_count",
                 surface="home", stage="rank") == 50


def test_label_sets_hold_only_what_the_server_reports() -> None:
    # Every stage the pipeline marks, every cache op the ANN tier counts, and nothing else.
    assert set(STAGES) == {"queue", "seeds", "walk", "fallback", "rank", "encode", "other"}
    assert set(CACHE_OPS) == {"get", "mget", "pipeline", "other"}


def test_children_are_cached_not_looked_up_per_request(
    metrics: Metrics, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics.recommend_call_finished("home", "graph", "OK")  # the first call creates the child

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(".labels() on the hot path")

    for metric in (metrics.request_duration, metrics.stage_duration, metrics.walk_coverage,
                   metrics.requests, metrics.degraded, metrics.budget_exhausted):
        monkeypatch.setattr(metric, "labels", forbidden)
    for _ in range(3):
        metrics.request_finished("home", answer(degraded=True, degraded_reasons=["deadline"]))
        metrics.encode_finished("home", 0.0001)
        metrics.recommend_call_finished("home", "graph", "OK")
    assert value(registry, "recserver_grpc_requests_total",
                 surface="home", source="graph", code="OK") == 4


def test_requests_by_code_with_unknown_surfaces_folded(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    outcomes = RecommendOutcomes(metrics)  # the transport's adapter, as the server wires it
    for i in range(200):  # a client sending junk surfaces cannot create series
        outcomes.rpc_finished(RECOMMEND_METHOD, pb.RecommendRequest(surface=f"junk{i}"), None,
                              grpc.StatusCode.INVALID_ARGUMENT)
    for source in SOURCES:
        outcomes.rpc_finished(RECOMMEND_METHOD, pb.RecommendRequest(surface="home"),
                              pb.RecommendResponse(source=SOURCE_TO_PROTO[source]),
                              grpc.StatusCode.OK)
    outcomes.rpc_finished("/grpc.health.v1.Health/Check", object(), None, grpc.StatusCode.OK)
    assert value(registry, "recserver_grpc_requests_total",
                 surface="unknown", source="none", code="INVALID_ARGUMENT") == 200
    assert label_values(registry, "recserver_grpc_requests_total", "surface") == {"unknown", "home"}
    assert label_values(registry, "recserver_grpc_requests_total", "source") == {*SOURCES, "none"}
    total = sum(s.value for f in registry.collect() for s in f.samples
                if s.name == "recserver_grpc_requests_total")
    assert total == 200 + len(SOURCES)  # the health check is not a Recommend call


def test_an_unknown_surface_answer_is_counted_as_unknown(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.request_finished("nope", answer())
    metrics.encode_finished("nope", 0.001)
    assert value(registry, "recserver_request_duration_seconds_count",
                 surface="unknown", source="graph") == 1
    assert label_values(registry, "recserver_request_duration_seconds_count", "surface") == {
        "home", "item_page", "search", "unknown"}


def test_nothing_goes_to_the_global_registry(metrics: Metrics) -> None:
    metrics.request_finished("home", answer())
    assert REGISTRY.get_sample_value("recserver_request_duration_seconds_count",
                                     {"surface": "home", "source": "graph"}) is None


# -- scrape-time collectors, ingest, cache ---------------------------------------------------


def test_graph_size_version_and_age_are_read_at_scrape_time(registry: CollectorRegistry) -> None:
    graph = clustered_graph()
    snap = graph.current
    now = [snap.built_at + 5.0]
    registry.register(GraphCollector(graph, clock=lambda: now[0]))
    assert value(registry, "recserver_graph_edges") == snap.n_edges
    assert value(registry, "recserver_graph_users") == snap.n_users
    assert value(registry, "recserver_graph_snapshot_version") == snap.version
    assert value(registry, "recserver_graph_snapshot_age_seconds") == pytest.approx(5.0)
    now[0] += 60
    assert value(registry, "recserver_graph_snapshot_age_seconds") == pytest.approx(65.0)
    newer = graph.publish()
    assert value(registry, "recserver_graph_snapshot_version") == newer.version


def test_watch_graph_counts_publishes(metrics: Metrics, registry: CollectorRegistry) -> None:
    graph = clustered_graph()
    metrics.watch_graph(graph)
    graph.publish()
    graph.publish()
    assert value(registry, "recserver_graph_publishes_total") == 2
    assert value(registry, "recserver_graph_edges") == graph.current.n_edges


def test_reloads_and_ingest_are_counted(metrics: Metrics, registry: CollectorRegistry) -> None:
    @dataclass
    class Holder:
        reloads_ok: int = 3
        reloads_failed: int = 1
        last_error: str | None = "bad file"
        restart_pending: tuple[str, ...] = ("server.port",)

    holder = Holder()
    metrics.watch_config(holder)
    assert value(registry, "recserver_config_reloads_total", outcome="ok") == 3
    assert value(registry, "recserver_config_reloads_total", outcome="failed") == 1
    assert value(registry, "recserver_config_last_reload_success") == 0
    holder.last_error = None
    assert value(registry, "recserver_config_last_reload_success") == 1
    assert value(registry, "recserver_config_restart_pending") == 1
    metrics.record_ingest(accepted=10, duplicate=2, rejected=0)
    assert value(registry, "recserver_ingest_events_total", outcome="accepted") == 10
    assert value(registry, "recserver_ingest_events_total", outcome="duplicate") == 2
    assert registry.get_sample_value("recserver_ingest_events_total", {"outcome": "rejected"}) == 0


def test_cache_metrics(registry: CollectorRegistry) -> None:
    cache = CacheMetrics(registry)
    cache.error("mget")
    cache.error("made_up")
    cache.lookup("hit", 0.00008)
    cache.lookup("skipped", 0.0)
    cache.breaker("open")
    cache.breaker("open")  # not a new opening
    assert value(registry, "recserver_cache_breaker_state") == 2
    cache.breaker("half_open")
    assert value(registry, "recserver_cache_breaker_state") == 1
    cache.breaker("open")
    assert value(registry, "recserver_cache_breaker_opens_total") == 2
    assert value(registry, "recserver_cache_errors_total", op="mget") == 1
    assert value(registry, "recserver_cache_errors_total", op="other") == 1
    assert value(registry, "recserver_cache_lookups_total", outcome="hit") == 1
    assert value(registry, "recserver_cache_lookup_duration_seconds_count") == 1  # not "skipped"
    with pytest.raises(ValueError, match="outcome"):
        cache.lookup("maybe", 0.0)
    with pytest.raises(ValueError, match="breaker state"):
        cache.breaker("ajar")
    CacheMetrics().error("get")  # standalone: a private registry, nothing global


# -- HTTP ------------------------------------------------------------------------------------


def test_metrics_server_serves_on_a_free_port_and_releases_it(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.request_finished("home", answer())
    server = MetricsServer(registry, "127.0.0.1", 0)
    port = server.start()
    try:
        assert port > 0 and server.url == f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read().decode()
        assert 'recserver_request_duration_seconds_count{source="graph",surface="home"} 1.0' in body
        assert "_created" not in body
        with pytest.raises(MetricsBindError, match="--metrics-port"):
            MetricsServer(registry, "127.0.0.1", port).start()
    finally:
        server.stop()
    again = MetricsServer(registry, "127.0.0.1", port)  # released: the port can be bound again
    assert again.start() == port
    again.stop()


def test_the_metrics_package_does_not_import_the_transport() -> None:
    """Metrics are told outcomes in domain terms; gRPC and the protos stay in ``server``."""
    import ast
    from pathlib import Path

    import recserver.metrics

    folder = Path(recserver.metrics.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("grpc", "recserver.server", "recserver.proto")), (
                    f"{path.name} imports {name}")
