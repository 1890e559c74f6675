"""Edge deduplication, decay and idempotent ingest in the edge store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recserver.graph.config import EventWeightsConfig, GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.store import EdgeStore

DAY = 86_400.0


def store(**weights: object) -> EdgeStore:
    return EdgeStore(GraphConfig(event_weights=EventWeightsConfig(**weights)))  # type: ignore[arg-type]


def cols(*events: Event) -> EventColumns:
    return EventColumns.from_events(list(events))


def edge_weights(s: EdgeStore) -> dict[tuple[str, str], float]:
    s.fold_incoming()
    run = s.pending
    scale = s.scale_at(s.max_ts)
    return {
        (s.users.name(int(u)), s.items.name(int(i))): float(w) * scale
        for u, i, w in zip(run.users, run.items, run.weight, strict=True)
    }


def test_repeated_interactions_merge_into_one_edge() -> None:
    s = store(transform="linear", half_life_days=None)
    out = s.ingest(cols(
        Event("u1", "a", "view", 1, 100.0),
        Event("u1", "a", "purchase", 2, 200.0),
        Event("u1", "b", "click", 1, 150.0),
    ))
    assert out.n_accepted == 3
    weights = edge_weights(s)
    assert weights == {("u1", "a"): 1.0 + 8.0 * 2, ("u1", "b"): 2.0}
    assert s.pending.last_ts.tolist() == [200.0, 150.0]  # the latest timestamp is kept


def test_time_decay_halves_weight_per_half_life() -> None:
    s = store(transform="linear", half_life_days=10.0)
    s.ingest(cols(Event("u", "old", "view", 1, 0.0), Event("u", "new", "view", 1, 10 * DAY)))
    weights = edge_weights(s)
    assert weights[("u", "new")] == pytest.approx(1.0)
    assert weights[("u", "old")] == pytest.approx(0.5)


@pytest.mark.parametrize(("transform", "expected"), [
    ("linear", 8.0 * 24), ("log1p", 8.0 * math.log1p(24)), ("sqrt", 8.0 * math.sqrt(24)),
])
def test_event_weight_transform(transform: str, expected: float) -> None:
    s = store(transform=transform, half_life_days=None)
    s.ingest(cols(Event("u", "i", "purchase", 24, 1.0)))
    assert edge_weights(s)[("u", "i")] == pytest.approx(expected)


def test_replayed_events_are_applied_once() -> None:
    s = store(transform="linear", half_life_days=None)
    batch = cols(Event("u", "i", "view", 1, 10.0), Event("u", "i", "view", 1, 11.0))
    first = s.ingest(batch)
    again = s.ingest(batch)
    assert first.accepted.tolist() == [True, True]
    assert again.accepted.tolist() == [False, False]
    assert again.duplicate.tolist() == [True, True]
    assert edge_weights(s)[("u", "i")] == 2.0


def test_duplicates_inside_one_batch_count_once() -> None:
    s = store(transform="linear", half_life_days=None)
    out = s.ingest(cols(Event("u", "i", "view", 1, 10.0), Event("u", "i", "view", 1, 10.0)))
    assert out.accepted.tolist() == [True, False]
    assert edge_weights(s)[("u", "i")] == 1.0


def test_event_id_identifies_a_replay_even_with_other_fields() -> None:
    s = store(transform="linear", half_life_days=None)
    s.ingest(cols(Event("u", "i", "view", 1, 10.0, event_id="e-1")))
    out = s.ingest(cols(Event("u", "i", "view", 1, 99.0, event_id="e-1"),
                        Event("u", "i", "view", 1, 99.0, event_id="e-2")))
    assert out.accepted.tolist() == [False, True]


def test_unknown_type_without_default_is_rejected_not_applied() -> None:
    s = store(half_life_days=None)
    out = s.ingest(cols(Event("u", "i", "wishlist", 1, 1.0), Event("u", "j", "view", 1, 1.0)))
    assert out.rejected.tolist() == [True, False]
    assert list(edge_weights(s)) == [("u", "j")]


def test_unknown_type_uses_default_weight_when_configured() -> None:
    s = store(default=0.5, transform="linear", half_life_days=None)
    s.ingest(cols(Event("u", "i", "wishlist", 2, 1.0)))
    assert edge_weights(s)[("u", "i")] == 1.0


def test_ids_are_dense_and_stable() -> None:
    s = store()
    s.ingest(cols(Event("alice", "x", "view", 1, 1.0), Event("bob", "y", "view", 1, 2.0)))
    s.ingest(cols(Event("carol", "x", "view", 1, 3.0)))
    assert [s.users.get(n) for n in ("alice", "bob", "carol")] == [0, 1, 2]
    assert [s.items.get(n) for n in ("x", "y")] == [0, 1]
    assert np.array_equal(s.users.lookup_many(["bob", "nobody"]), [1, -1])
