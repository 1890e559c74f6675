"""Shared pieces of the ANN tests: a synthetic graph, configs, a runtime per backend, requests."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recserver.ann.cache import CountingMetrics
from recserver.ann.config import AnnConfig
from recserver.ann.runtime import AnnRuntime
from recserver.graph.config import GraphConfig
from recserver.graph.live import LiveGraph
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.synthetic import generate
from recserver.service.fallback import FallbackRequest

#: Settings for tests: generous socket timeouts (a busy test machine must not look like an
#: outage), a quick breaker, small vectors.
TEST_ANN: dict[str, Any] = {
    "socket_timeout_ms": 50.0,
    "connect_timeout_ms": 50.0,
    "top_k": 50,
    "rebuild_interval_s": 0,
    "pointer_poll_s": 0.05,
    "breaker": {"failure_threshold": 2, "open_s": 0.3},
    "embeddings": {"dim": 16},
}


def synthetic_live(n_events: int = 20_000, seed: int = 0) -> LiveGraph:
    live = LiveGraph(GraphConfig())
    live.ingest(generate(n_events, seed=seed))
    live.publish(compact=True)
    return live


def ann_config(**overrides: Any) -> AnnConfig:
    doc = {**TEST_ANN, **overrides}
    return AnnConfig.model_validate(doc)


def make_runtime(live: LiveGraph, redis_url: str | None, **overrides: Any) -> AnnRuntime:
    return AnnRuntime(ann_config(**overrides), live, redis_url=redis_url,
                      metrics=CountingMetrics())


def request(
    snap: GraphSnapshot, user: int = -1, context: list[int] | None = None, k: int = 10,
    exclude: list[int] | None = None, budget_s: float = 0.5,
) -> FallbackRequest:
    return FallbackRequest(
        snapshot=snap, surface="home", user=user,
        context=np.asarray(context or [], dtype=np.int32),
        exclude=np.unique(np.asarray(exclude or [], dtype=np.int32)),
        k=k, deadline=time.perf_counter() + budget_s,
    )


def counting(runtime: AnnRuntime) -> CountingMetrics:
    metrics = runtime.metrics
    assert isinstance(metrics, CountingMetrics)
    return metrics
