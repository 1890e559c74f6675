"""Bounded dedup: keys live for a window of event time and leave a whole segment at a time."""

from __future__ import annotations

import numpy as np

from recserver.graph.config import EventWeightsConfig, GraphConfig
from recserver.graph.dedup_window import SEGMENTS, WindowedDedup
from recserver.graph.events import Event, EventColumns
from recserver.graph.store import EdgeStore

WINDOW = 80.0  # seconds: spans of 10 s
SPAN = WINDOW / SEGMENTS


def keys(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def at(*ts: float) -> np.ndarray:
    return np.array(ts, dtype=np.float64)


def test_a_key_is_held_through_the_window_and_dropped_one_span_later():
    d = WindowedDedup(WINDOW)
    assert d.add_new(keys(1), at(100.0)).tolist() == [True]  # segment 10: [100, 110)
    # Newest event in segment 18: segment 10 is still inside the window.
    assert d.add_new(keys(2), at(100.0 + SEGMENTS * SPAN)).tolist() == [True]
    assert d.contains(keys(1)).tolist() == [True]
    assert d.add_new(keys(1), at(100.0)).tolist() == [False]  # a replay: duplicate
    # One event in segment 19 drops segment 10 whole; the replay is then new again.
    d.add_new(keys(3), at(100.0 + (SEGMENTS + 1) * SPAN))
    assert d.contains(keys(1, 2, 3)).tolist() == [False, True, True]
    assert d.horizon == 110.0
    assert d.add_new(keys(1), at(100.0)).tolist() == [True]
    assert d.contains(keys(1)).tolist() == [False]  # older than the window: not kept


def test_memory_is_bounded_by_the_window_whatever_the_history():
    d = WindowedDedup(WINDOW)
    per_second = 50
    for second in range(1000):
        k = np.arange(second * per_second, (second + 1) * per_second, dtype=np.uint64) + 1
        assert d.add_new(k, np.full(per_second, float(second))).all()
    assert len(d) <= (SEGMENTS + 1) * SPAN * per_second
    assert len(d) >= WINDOW * per_second
    assert d.segments == SEGMENTS + 1


def test_keys_without_a_window_are_kept_forever_and_batches_dedup_in_order():
    d = WindowedDedup(None)
    assert d.add_new(keys(5, 6, 5), at(0.0, 1e9, 2e9)).tolist() == [True, True, False]
    assert d.add_new(keys(5), at(5e9)).tolist() == [False]
    assert len(d) == 2 and d.horizon == -np.inf


def test_restored_keys_expire_a_window_after_the_newest_event():
    d = WindowedDedup(WINDOW)
    d.restore(keys(7, 8), newest_timestamp=500.0)
    d.add_new(keys(9), at(500.0 + WINDOW))
    assert d.contains(keys(7, 8)).tolist() == [True, True]
    d.add_new(keys(10), at(500.0 + WINDOW + SPAN))
    assert d.contains(keys(7, 8)).tolist() == [False, False]


def test_store_counts_a_replay_inside_the_window_once_and_one_older_twice():
    cfg = GraphConfig(event_weights=EventWeightsConfig(half_life_days=None, transform="linear"),
                      dedup_window_days=1.0)
    store = EdgeStore(cfg)
    old = Event("u", "i", "view", 1, 1_000_000.0)
    store.ingest(EventColumns.from_events([old]))
    store.ingest(EventColumns.from_events([Event("v", "j", "view", 1, 1_000_000.0 + 86_400)]))
    assert store.ingest(EventColumns.from_events([old])).duplicate.tolist() == [True]
    # A day and a span later the old event's segment is gone: its replay counts again.
    store.ingest(EventColumns.from_events([Event("v", "j", "view", 1, 1_000_000.0 + 97_200)]))
    outcome = store.ingest(EventColumns.from_events([old]))
    assert outcome.accepted.tolist() == [True]
    store.fold_incoming()
    weights = dict(zip(store.pending.keys.tolist(), store.pending.weight.tolist(), strict=True))
    assert weights[(0 << 32) | 0] == 2.0


def test_many_small_batches_leave_few_runs_and_still_dedup():
    """Live traffic ingests a few events a call: the runs a lookup searches stay bounded."""
    from recserver.graph.dedup import MAX_RECENT_RUNS, DedupIndex

    index = DedupIndex()
    for batch in range(2_000):
        keys = np.arange(batch * 3, batch * 3 + 3, dtype=np.uint64)
        assert index.add_new(keys).all()
        assert index.runs <= MAX_RECENT_RUNS + 1
    assert not index.add_new(np.arange(0, 6_000, 7, dtype=np.uint64)).any()
    assert len(index) == 6_000
