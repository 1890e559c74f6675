"""Online stability: overlap of consecutive answers to a user with no event of theirs between."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from recserver.graph.config import GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.metrics.stability import StabilityMetrics
from recserver.online.config import OnlineQualityConfig, sampled_user
from recserver.online.stability import OnlineStability
from recserver.server.client import RecommendClient
from recserver.service.types import Recommendation, RecommendedItem, RecommendQuery
from tests.node_harness import DataSource, InProcessNode, wait_sample
from tests.server_fixtures import config_document, write_config

NAME = "recserver_online_stability_overlap_ratio"


def answer(*items: str) -> Recommendation:
    return Recommendation(items=[RecommendedItem(i, 1.0, "graph") for i in items],
                          source="graph", degraded=False, degraded_reasons=[], coverage=1.0,
                          budget_ms=50.0, server_elapsed_ms=1.0, snapshot_version=1)


def ask(user: str, *context: str) -> RecommendQuery:
    return RecommendQuery(user_id=user, surface="home", k=4, context_item_ids=tuple(context))


def count(registry: CollectorRegistry, surface: str = "home") -> float:
    return registry.get_sample_value(f"{NAME}_count", {"surface": surface}) or 0.0


def total(registry: CollectorRegistry, surface: str = "home") -> float:
    return registry.get_sample_value(f"{NAME}_sum", {"surface": surface}) or 0.0


def test_consecutive_answers_are_compared_until_the_user_acts() -> None:
    registry = CollectorRegistry()
    stability = OnlineStability(OnlineQualityConfig(sample_rate=1.0),
                                metrics=StabilityMetrics(registry))
    graph = LiveGraph(GraphConfig())
    graph.on_ingest.append(stability.on_ingest)
    stability.request_finished("home", answer("a", "b", "c", "d"), ask("u1"))
    assert count(registry) == 0  # a first answer has nothing to be compared with
    stability.request_finished("home", answer("a", "b", "x", "y"), ask("u1"))
    assert count(registry) == 1 and total(registry) == pytest.approx(0.5)
    # Another user's event changes nothing for u1.
    graph.ingest(EventColumns.from_events([Event("u2", "a", "purchase", 1, 10.0)]))
    stability.request_finished("home", answer("a", "b", "x", "z"), ask("u1"))
    assert count(registry) == 2 and total(registry) == pytest.approx(1.25)
    # u1 acts: the next list may differ because of that, so it starts a new chain.
    graph.ingest(EventColumns.from_events([Event("u1", "q", "purchase", 1, 11.0)]))
    stability.request_finished("home", answer("e", "f", "g", "h"), ask("u1"))
    assert count(registry) == 2
    stability.request_finished("home", answer("e", "f", "g", "h"), ask("u1"))
    assert count(registry) == 3 and total(registry) == pytest.approx(2.25)
    # A duplicate of an applied event is no new action.
    graph.ingest(EventColumns.from_events([Event("u1", "q", "purchase", 1, 11.0)]))
    stability.request_finished("home", answer("e", "f", "g", "i"), ask("u1"))
    assert count(registry) == 4
    # Answers to a context (an item page) and other surfaces are not compared with home's.
    stability.request_finished("home", answer("k", "l"), ask("u1", "a"))
    stability.request_finished("search", answer("k", "l"), ask("u1"))
    assert count(registry) == 4 and count(registry, "search") == 0
    assert stability.totals["home"][0] == 4


def test_sampling_is_by_user_and_memory_is_bounded() -> None:
    users = [f"user{n}" for n in range(2_000)]
    picked = [u for u in users if sampled_user(u, 0.25)]
    assert 400 < len(picked) < 600  # about a quarter, the same in every process
    assert picked == [u for u in users if sampled_user(u, 0.25)]
    assert not any(sampled_user(u, 0.0) for u in users)
    stability = OnlineStability(OnlineQualityConfig(sample_rate=0.25,
                                                    max_pending_per_surface=100))
    for user in users:
        stability.request_finished("home", answer("a"), ask(user))
    assert stability.remembered == 100
    disabled = OnlineStability(OnlineQualityConfig(enabled=False, sample_rate=1.0))
    disabled.request_finished("home", answer("a"), ask("u"))
    assert disabled.remembered == 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessNode, int]]:
    root = tmp_path_factory.mktemp("online-stability")
    document = config_document()
    document["online_quality"] = {"sample_rate": 1.0}
    app = InProcessNode(write_config(root / "config.yaml", document), root)
    port = app.start(DataSource(synthetic="20000"))
    yield app, port
    app.stop(0)


def test_the_node_exports_the_overlap_of_repeated_requests(
        served: tuple[InProcessNode, int]) -> None:
    # The worker reports each sampled answer; the builder compares and counts (its registry).
    app, port = served
    registry = app.builder.metrics.registry
    user = app.graph.current.users.name(5)
    sampled = "recserver_online_answers_sampled_total"

    def answers_in() -> float:
        return sum(s.value for m in registry.collect() for s in m.samples if s.name == sampled)

    with RecommendClient(f"127.0.0.1:{port}") as client:
        first = client.recommend(user, "home", k=10)
        second = client.recommend(user, "home", k=10)
        assert wait_sample(registry, f"{NAME}_count", {"surface": "home"}) == 1
        assert count(registry) == 1
        same = len({i.item_id for i in first.items} & {i.item_id for i in second.items})
        assert total(registry) == pytest.approx(same / 10)
        app.graph.ingest(EventColumns.from_events([
            Event(user, first.items[0].item_id, "purchase", 1, time.time())]))
        before = answers_in()
        client.recommend(user, "home", k=10)
        deadline = time.monotonic() + 15.0  # the third answer reached the builder
        while answers_in() < before + 1:
            assert time.monotonic() < deadline, "the third answer was never reported"
            time.sleep(0.02)
        assert count(registry) == 1  # the user acted in between: not churn
