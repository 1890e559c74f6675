"""Time decay over years of running: the epoch moves, weights stay finite, history stays live."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from recserver.graph.bootstrap import load_into
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.store import REBASE_HALF_LIVES
from recserver.graph.synthetic import generate, recent_start
from tests.graph_helpers import merged_edges

DAY = 86_400.0


def live_graph(half_life_days: float, max_gap: float | None = None) -> LiveGraph:
    """Calendar-time decay unless ``max_gap`` (half-lives) caps dead gaps."""
    return LiveGraph(GraphConfig(
        event_weights=EventWeightsConfig(transform="linear", half_life_days=half_life_days,
                                         max_decay_gap_half_lives=max_gap),
        prune=PruneConfig(hub_percentile=None, max_edge_age_days=None),
    ))


def one(user: str, item: str, ts: float) -> EventColumns:
    return EventColumns.from_events([Event(user, item, "view", 1, ts)])


def test_events_years_apart_keep_finite_weights() -> None:
    # A one-day half-life and three years between events: 2**1095 overflows float64 unless the
    # epoch moves with time.
    live = live_graph(1.0)
    live.ingest(one("u", "old", 0.0))
    live.publish()
    live.ingest(one("u", "new", 3 * 365 * DAY))
    live.publish()
    edges = merged_edges(live)
    assert edges[("u", "new")] == pytest.approx(1.0)
    # 1095 half-lives old: below any float, yet the edge keeps the smallest float32 weight
    assert 0.0 < edges[("u", "old")] < 1e-37
    assert all(math.isfinite(w) for w in live.store.pending.weight.tolist())
    assert all(math.isfinite(w) for w in live.store.main.weight.tolist())


def test_rebase_keeps_decayed_weights() -> None:
    live = live_graph(1.0)
    live.ingest(one("u", "a", 0.0))
    live.publish()
    later = (REBASE_HALF_LIVES + 6) * DAY
    live.ingest(one("u", "b", later))
    live.ingest(one("v", "a", later))
    assert live.store.t0 == later  # the epoch moved
    live.publish(compact=True)
    edges = merged_edges(live)
    assert edges[("u", "b")] == pytest.approx(1.0)
    assert edges[("v", "a")] == pytest.approx(1.0)
    assert edges[("u", "a")] == pytest.approx(2.0 ** -(REBASE_HALF_LIVES + 6), rel=1e-5)


def test_rebase_while_overlay_edges_are_pending() -> None:
    live = live_graph(10.0)
    live.ingest(one("u", "a", 0.0))
    live.publish()
    live.ingest(one("u", "b", 5 * DAY))  # stays in the overlay
    live.publish()
    newest = 5 * DAY + REBASE_HALF_LIVES * 10 * DAY + DAY
    live.ingest(one("w", "c", newest))
    live.publish()  # the base is too far behind the newest event: rebuilt at its time
    assert live.current.t_ref == newest
    edges = merged_edges(live)
    assert edges[("w", "c")] == pytest.approx(1.0)
    assert edges[("u", "b")] == pytest.approx(2.0 ** -((newest - 5 * DAY) / (10 * DAY)), rel=1e-5)


def test_recent_start_ends_the_period_today() -> None:
    now = 1_800_000_123.0
    start = recent_start(90.0, now=now)
    end = start + 90 * DAY
    assert 0 <= now - end < DAY and end % DAY == 0


def test_embedded_synthetic_data_ends_at_the_present() -> None:
    live = live_graph(30.0)
    load_into(live, synthetic="2000")
    newest = live.store.max_ts
    assert 0 <= time.time() - newest < 2 * DAY
    # A purchase recorded now weighs about as much as an existing edge, not 10**11 times more.
    snap = live.current
    _, weights = snap.user_items(0)
    live.ingest(one(snap.users.name(0), "fresh-item", time.time()))
    live.publish()
    fresh = merged_edges(live)[(snap.users.name(0), "fresh-item")]
    assert fresh < 10 * float(np.max(weights)) + 1.0


def test_generate_stays_reproducible_without_a_start() -> None:
    a, b = generate(1000, seed=5), generate(1000, seed=5)
    np.testing.assert_array_equal(a.timestamp, b.timestamp)
