"""The ANN tier on a node (``tests.node_harness``): the builder builds in the background and
publishes (to Redis, or to sealed files in the run directory), a worker adopts it and serves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from recserver.ann.codec import Keys, parse_pointer
from recserver.service.types import RecommendQuery
from tests.ann_helpers import TEST_ANN
from tests.node_harness import DataSource, InProcessNode
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401

DOCUMENT = {
    "surfaces": {"home": {
        "budget_ms": 200, "sla_p99_ms": 300, "k_default": 10, "k_max": 50,
        "walk": {"steps": 1, "n_p": 0},
        "fallback": {"tiers": ["ann", "popular"]},
    }},
    "server": {"reload_poll_s": 60.0},
    "ann": TEST_ANN,
}


def started_app(tmp_path: Path, redis_url: str | None) -> InProcessNode:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(DOCUMENT))
    app = InProcessNode(path, tmp_path, redis_url=redis_url)
    app.start(DataSource(synthetic="20000"))
    deadline = time.monotonic() + 60
    while app.worker.ann.tier.state is None:  # built by the builder, adopted by the worker
        if time.monotonic() >= deadline:
            app.stop(grace=0)
            raise AssertionError("the worker did not adopt a background ANN build")
        time.sleep(0.05)
    return app


@pytest.fixture(params=["redis", "files"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InProcessNode]:
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        url = server.url
    running = started_app(tmp_path, url)
    yield running
    running.stop(grace=1.0)


def test_the_node_builds_in_the_background_and_serves_ann(app: InProcessNode) -> None:
    assert "ann" in app.tiers and app.worker.ann.running and app.builder.ann.running
    query = RecommendQuery(user_id="u1", surface="home", k=10)
    resp = app.recommender.recommend(query, arrival=time.perf_counter(), client_remaining_s=None)
    assert len(resp.items) == 10
    assert any(item.source == "ann_fallback" for item in resp.items)
    assert not any(r.startswith("fallback_error") for r in resp.degraded_reasons)
    report = app.builder.ann.last_report
    assert report is not None and report.users_written > 0
    assert app.worker.ann.last_report is None  # a worker never builds
    if app.builder.ann.cache.backend == "redis":
        version = parse_pointer(app.builder.ann.cache.get(Keys("recserver:ann").pointer, 1.0))
        assert version == report.version


def test_stop_ends_the_rebuild_thread(tmp_path: Path) -> None:
    app = started_app(tmp_path, None)
    assert app.builder.ann.running and app.worker.ann.running
    app.stop(grace=1.0)
    assert not app.builder.ann.running and not app.worker.ann.running
