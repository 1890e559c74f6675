"""The temporal split: nothing from the test period reaches training or the graph."""

from __future__ import annotations

import numpy as np
import pytest

from recserver.config import config_from_document
from recserver.eval.setup import EvalSetup
from recserver.eval.split import cutoff_time, temporal_split
from recserver.graph.events import Event, EventColumns
from recserver.graph.synthetic import generate


def events() -> EventColumns:
    rows = [
        Event("u1", "a", "purchase", 1, 100), Event("u1", "b", "purchase", 1, 110),
        Event("u2", "a", "purchase", 1, 120), Event("u2", "c", "purchase", 1, 130),
        Event("u3", "c", "purchase", 1, 140),
        # test period (>= 200)
        Event("u1", "a", "purchase", 1, 200),  # seen before: not relevant
        Event("u1", "c", "purchase", 1, 210),  # new for u1: relevant
        Event("u2", "new", "purchase", 1, 220),  # an item the graph never saw: still relevant
        Event("u4", "a", "purchase", 1, 230),  # no history: not a test user
        Event("u3", "c", "purchase", 1, 240),  # only a repeat: u3 is not a test user
    ]
    return EventColumns.from_events(rows)


def test_split_at_a_given_cutoff_and_relevant_items() -> None:
    split = temporal_split(events(), cutoff=200)
    assert len(split.train) == 5 and len(split.test) == 5
    users = {u.name: u for u in split.users}
    assert set(users) == {"u1", "u2"}
    assert users["u1"].relevant == frozenset({"c"})
    assert users["u2"].relevant == frozenset({"new"})
    assert users["u1"].history == 2
    assert split.item_users == {"a": 2, "b": 1, "c": 2}


def test_nothing_from_the_future_leaks_into_training_or_the_graph() -> None:
    cols = generate(20_000, seed=3)
    split = temporal_split(cols, test_fraction=0.2)
    assert split.train.timestamp.max() < split.cutoff <= split.test.timestamp.min()
    assert len(split.train) + len(split.test) == len(cols)
    # Relevant items are ones the user first touched at or after the cutoff.
    train_pairs = {(split.train.user_names[u], split.train.item_names[i])
                   for u, i in zip(split.train.user_codes.tolist(),
                                   split.train.item_codes.tolist(), strict=True)}
    test_pairs = {(split.test.user_names[u], split.test.item_names[i])
                  for u, i in zip(split.test.user_codes.tolist(),
                                  split.test.item_codes.tolist(), strict=True)}
    for user in split.users:
        for item in user.relevant:
            assert (user.name, item) in test_pairs
            assert (user.name, item) not in train_pairs
    # The graph built for evaluation holds exactly the training edges.
    config = config_from_document({"surfaces": {"home": {}}})
    setup = EvalSetup(config, split.train)
    try:
        snap = setup.snapshot
        assert snap.t_ref < split.cutoff
        edges: set[tuple[str, str]] = set()
        for u in range(snap.n_users):
            items, _ = snap.user_items(u)
            edges.update((snap.users.name(u), name) for name in snap.items.names(items.tolist()))
        assert edges <= train_pairs
        assert not (edges & (test_pairs - train_pairs))
    finally:
        setup.close()


def test_user_sample_is_seeded_and_bounded() -> None:
    cols = generate(20_000, seed=3)
    a = temporal_split(cols, test_fraction=0.2, max_users=25, seed=1)
    b = temporal_split(cols, test_fraction=0.2, max_users=25, seed=1)
    assert len(a.users) == 25 < a.eligible_users
    assert [u.name for u in a.users] == [u.name for u in b.users]


def test_cutoff_time_checks_its_inputs() -> None:
    assert cutoff_time(np.arange(10.0), 0.2) == 8.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        cutoff_time(np.arange(10.0), 1.5)
    with pytest.raises(ValueError, match="no events"):
        cutoff_time(np.empty(0), 0.1)
