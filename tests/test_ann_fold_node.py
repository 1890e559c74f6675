"""New items folded into the ANN results on a node, whose builder builds in a child process and
holds no model: the child saves its vectors, the builder folds from them, workers adopt the
grown item table at the same version (``ann.fold_saved``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from recserver.graph.events import Event, EventColumns
from tests.ann_helpers import TEST_ANN, request
from tests.node_harness import DataSource, InProcessNode
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401


def wait_for(check: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(params=["files", "redis"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InProcessNode]:
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        url = server.url
    document = {
        "surfaces": {"home": {"budget_ms": 200, "sla_p99_ms": 300, "k_default": 10,
                              "k_max": 50, "walk": {"steps": 1, "n_p": 0},
                              "fallback": {"tiers": ["ann", "popular"]}}},
        "server": {"reload_poll_s": 60.0},
        "ann": {**TEST_ANN, "fold_new_items_s": 0.05, "fold_min_users": 3},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    app = InProcessNode(path, tmp_path, redis_url=url, ann_builds="child")
    try:
        app.start(DataSource(synthetic="20000"))
        wait_for(lambda: app.worker.ann.tier.state is not None, "the worker to adopt a build")
        yield app
    finally:
        app.stop(grace=1.0)


def test_a_new_item_reaches_a_workers_ann_answers_without_a_rebuild(
        node: InProcessNode) -> None:
    state = node.worker.ann.tier.state
    assert state is not None and node.builder.ann.model is None  # built in the child
    version, built = state.version, len(state.to_local)
    snap = node.graph.current
    degree = np.diff(snap.base_items.indptr)
    anchor = int(np.flatnonzero(degree >= 3)[0])
    names = [snap.users.name(int(u)) for u in snap.base_items.neighbours(anchor)[:3]]
    t = snap.t_ref + 60.0
    node.graph.ingest(EventColumns.from_events(
        [Event(name, "brand-new", "click", 1.0, t + n) for n, name in enumerate(names)]
        + [Event(names[0], "two-users", "click", 1.0, t), Event(names[1], "two-users",
                                                                 "click", 1.0, t)]))
    node.graph.publish()
    worker_graph = node.worker.graph
    wait_for(lambda: worker_graph.current.items.get("brand-new") is not None,
             "the worker to map the new item")
    new = worker_graph.current.items.get("brand-new")
    assert new is not None and new >= built

    def similar_lists_new_item() -> bool:
        current = node.worker.ann.tier.state
        if current is None or len(current.to_local) <= new:
            return False
        wsnap = worker_graph.current
        own, _ = node.worker.ann.tier.fetch(request(wsnap, context=[new], k=50))
        return any(new in node.worker.ann.tier.fetch(
            request(wsnap, context=[int(i)], k=50))[0].tolist() for i in own.tolist())

    wait_for(similar_lists_new_item, "the new item in a similar item's ANN answer")
    current = node.worker.ann.tier.state
    assert current is not None and current.version == version  # folded, not rebuilt
    assert node.worker.ann.tier.counts["corrupt"] == 0
    # Two users are fewer than fold_min_users: that item has no list of its own.
    lonely = worker_graph.current.items.get("two-users")
    assert lonely is not None
    own, _ = node.worker.ann.tier.fetch(request(worker_graph.current, context=[lonely]))
    assert own.shape[0] == 0
